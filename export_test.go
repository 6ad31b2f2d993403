package iox

// NativePanics is how many panics the native library has caught since it was
// loaded (each was logged as one line and returned as ErrInternal).
func NativePanics() uint64 {
	lib, err := openLib("")
	if err != nil {
		return 0
	}
	return lib.PanicCount()
}
