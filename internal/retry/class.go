package retry

// Class is the closed set of upstream outcomes; it decides the reaction.
type Class uint8

const (
	// Success: a 2xx answer.
	Success Class = iota
	// RateLimited: 429; the backend cools down for the time it gave.
	RateLimited
	// Transient: 5xx, connection failure, timeout; counts against health.
	Transient
	// Auth: 401/403 from a backend; its credential is broken.
	Auth
	// CallerFault: any other 4xx (bad request, content filter); never retried.
	CallerFault
	// Redirect: a 3xx; upstream redirects are refused.
	Redirect
)

var classNames = [...]string{"success", "rate_limited", "transient", "auth", "caller_fault", "redirect"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// Classify maps an upstream HTTP status to its class.
func Classify(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return Success
	case status == 429:
		return RateLimited
	case status == 408 || status >= 500:
		return Transient
	case status == 401 || status == 403:
		return Auth
	case status >= 300 && status < 400:
		return Redirect
	default:
		return CallerFault
	}
}

// Retryable reports whether an outcome of class c may be retried on
// another attempt (the core policy: 429, 5xx, connection and timeout).
func (c Class) Retryable() bool {
	return c == RateLimited || c == Transient
}
