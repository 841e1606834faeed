// Package faultinject makes real block I/O errors on demand for tests: a
// FUSE file whose reads and writes fail with EIO wherever a request touches
// a chosen byte range ("bad sectors"), a loop device over that file, O_DIRECT
// reads and writes that turn one call into one block request, and a
// non-blocking reader of /dev/kmsg to see what the kernel logged about them.
//
// The pieces are torn down in one order only: the loop device is detached
// (and the kernel has let go of the file) before the FUSE server stops, or
// the unmount hangs on a file the loop device still holds. NewDisk does that
// from t.Cleanup, even for a test that failed half way.
//
// Everything here needs root, /dev/fuse and loop devices; Requirements says
// which is missing.
package faultinject
