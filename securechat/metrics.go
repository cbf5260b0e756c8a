package securechat

// Metrics is told of one-time code outcomes, for monitoring. Service.Metrics may be nil.
// Its methods get no conversation, number or code: only what happened.
type Metrics interface {
	// CodeSent is called after a code was texted (err nil) or its text failed.
	CodeSent(err error)
	// CodeRateLimited is called when a code request is refused by the hourly limits.
	CodeRateLimited()
	// CodeFailed is called for an entered code that did not verify: "wrong" or "expired".
	CodeFailed(reason string)
	// LinkLocked is called when wrong codes lock a link.
	LinkLocked()
}

type noMetrics struct{}

func (noMetrics) CodeSent(error)    {}
func (noMetrics) CodeRateLimited()  {}
func (noMetrics) CodeFailed(string) {}
func (noMetrics) LinkLocked()       {}

func (s *Service) metrics() Metrics {
	if s.Metrics == nil {
		return noMetrics{}
	}
	return s.Metrics
}
