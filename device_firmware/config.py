"""Settings of the demo application; VERSION is what v1 START compares."""

VERSION = "1.0.0"
