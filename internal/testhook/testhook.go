// Package testhook lets package backitest watch one Run of a worker, even a
// worker with an observer of its own: Worker.Run also tells the observer of
// the Hook that its context carries under Key, after the worker's own. It is
// internal so that only this repository's packages can use it.
package testhook

// Key is the context key of a Hook.
type Key struct{}

// Hook is an observer for the Run of one worker. Its fields hold a
// *backi.Worker and a backi.Observer as any, since package backi imports
// this one. A Run of another worker that the context reaches (an iteration
// that runs a worker of its own, say) ignores the Hook.
type Hook struct {
	Worker   any
	Observer any
}
