// Runs firmware test scenarios on the official MicroPython WebAssembly port.
//
// Usage: node mp_runner.mjs <job.json>
// job = {"mounts": {"/fw": "<host dir>", ...}, "module": "fw_x",
//        "tests": ["test_a", ...], "purge": ["ota_manager", ...], "heapsize": n,
//        "data": {"/src": "<host dir>"}}
// Every *.py / *.mpy file of each host dir is copied into MicroPython's
// in-memory filesystem; mounts go on sys.path, data dirs (files to read) do
// not. Each test runs in a fresh empty working directory (the board's
// filesystem) with the firmware modules imported afresh.
// Results are printed as "@@RESULT <json>" lines; anything else the test
// prints is returned with its result.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = [];
const mp = await loadMicroPython({
  heapsize: job.heapsize || 1024 * 1024,
  stdout: (line) => out.push(line),
  stderr: (line) => out.push(line),
});

for (const [target, source] of Object.entries({ ...job.mounts, ...job.data })) {
  mp.FS.mkdirTree(target);
  for (const name of readdirSync(source)) {
    if (name.endsWith(".py") || name.endsWith(".mpy")) {
      mp.FS.writeFile(join(target, name), readFileSync(join(source, name)));
    }
  }
}

const paths = Object.keys(job.mounts);
// A test that returns a generator runs one step per runPython call, with a
// gc.collect() at top level before each step: inside a runPython call this
// port's collector frees nothing, so heap figures need these breaks.
const driver = `
import sys, os, gc, json, io
for p in ${JSON.stringify(paths)}:
    sys.path.insert(0, p)
PURGE = ${JSON.stringify(job.purge)}
_GEN = type((lambda: (yield))())
_pending = None

def _report(name, value=None, error=None):
    global _pending
    _pending = None
    os.chdir('/')
    if error is None:
        result = {'test': name, 'ok': True, 'value': value}
    else:
        buf = io.StringIO()
        sys.print_exception(error, buf)
        result = {'test': name, 'ok': False, 'error': buf.getvalue()}
    print('@@RESULT ' + json.dumps(result))

def _run(index, name):
    global _pending
    for m in PURGE + ['time']:  # 'time': a scenario's virtual clock
        if m in sys.modules:
            del sys.modules[m]
    gc.collect()
    home = '/run%d' % index
    os.mkdir(home)
    os.chdir(home)
    print('@@BEGIN ' + name)
    try:
        module = __import__(${JSON.stringify(job.module)})
        value = getattr(module, name)()
    except BaseException as e:
        _report(name, error=e)
        return
    if isinstance(value, _GEN):
        _pending = (name, value)
    else:
        _report(name, value)

def _step():
    name, gen = _pending
    try:
        next(gen)
    except StopIteration as e:
        _report(name, e.value)
    except BaseException as e:
        _report(name, error=e)
`;
try {
  mp.runPython(driver);
  job.tests.forEach((name, index) => {
    mp.runPython(`_run(${index}, ${JSON.stringify(name)})`);
    while (mp.globals.get("_pending")) {
      mp.runPython("gc.collect()\n_step()");
    }
  });
} catch (err) {
  out.push("@@FATAL " + String(err));
}
process.stdout.write(out.join("\n") + "\n");
