package testenv

// SendAttempts is how many create-message requests arrived since the last
// FailEveryNthSend, refused ones included.
func (f *FakeTwilio) SendAttempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.createCount
}

// FailedSends is how many create-message requests FailEveryNthSend answered with 503
// since it was last called.
func (f *FakeTwilio) FailedSends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failEvery <= 0 {
		return 0
	}
	return f.createCount / f.failEvery
}
