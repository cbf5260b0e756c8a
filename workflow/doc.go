// Package workflow holds the clinic's rules as plain code over an injected clock: business
// hours and the after-hours reply, emergency phrases, templates, `later` specs, the inbox's
// scope and text, and response-time stats. It knows nothing of Matrix: conversation/ and
// bridge/ send the notices and change the rooms these rules decide on.
package workflow
