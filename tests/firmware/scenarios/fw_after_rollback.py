"""After a rollback: the next update starts clean.

HELLO reports a rollback until the next commit; a client that finds its own
version in it concludes the board rejected the update it just sent, so a
record that outlived the next commit would fail a good update.
"""

from fwtest import Board, blob, power_on, stage, state

V1 = blob(500, 1)
V2 = blob(600, 2)
V3 = blob(700, 3)


def _update(name, data, ver):
    b = Board()
    stage(b, name, data, ver=ver)
    assert b.send("OTA:APPLY:" + name + ":") == ["OTA:OK"]
    power_on()


def test_the_next_update_clears_the_rollback_record():
    _update("main.py", V1, "1.0.0")
    _update("main.py", V2, "2.0.0")
    import ota_commit

    assert ota_commit.rollback() is True
    power_on()
    assert Board().hello()["rollback"] == {"ver": "2.0.0", "restored": "1.0.0"}
    _update("main.py", V3, "3.0.0")
    h = Board().hello()
    assert h["rollback"] is None
    assert h["trial"]["ver"] == "3.0.0"
    assert state()["rollback"] is None
