package iox

// WithoutPidfds makes every later watch of a peer's process in this process
// take the way of a machine where no pidfd can be had: the package's watcher
// is closed, so watches fall back to looking every quarter of WithPeerTimeout.
// For child processes only: it cannot be undone.
func WithoutPidfds() { processes.Close() }
