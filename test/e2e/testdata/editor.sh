#!/bin/sh
# EDITOR for `kubectl edit`: changes the annotation note=hello to
# note=edited in the file kubectl hands over.
exec sed -i -e 's/note: hello/note: edited/' "$1"
