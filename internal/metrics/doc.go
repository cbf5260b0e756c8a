// Package metrics holds carebridge's Prometheus registry and the private listener that
// serves it with the health checks (/metrics, /healthz, /readyz). Labels carry fixed
// words and Twilio's numeric error codes only: never a phone number, a name, a body, a
// room or a user.
package metrics
