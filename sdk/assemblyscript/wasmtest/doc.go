// Package wasmtest builds the AssemblyScript SDK's guests (the test guest in
// testdata/guest and examples/hello-as) with the pinned compiler and runs
// them on the runner's real engine and host capabilities
// (runnerd/runnertest) and, for hello-as, in a real runnerd process. It has no non-test code. The tests need node and
// npm (testenv.AssemblyScript installs the compiler once per machine).
package wasmtest
