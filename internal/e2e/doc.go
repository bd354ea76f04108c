// Package e2e holds the end-to-end tests of the whole repository: the bundle and the Makefile's deploy check, the
// packaged app and its launcher, load and shutdown through the emulator's Apps proxy, and the browser sign-in. They
// run the app as the platform does, as a built binary, so app/ keeps only the app and its own tests and copies
// cleanly into a project of its own. The package has no code outside its tests.
package e2e
