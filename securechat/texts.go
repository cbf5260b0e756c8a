package securechat

import (
	"fmt"
	"time"
)

// The texts secure mode sends by SMS. Fixed templates: the clinic's name, a link or a
// code, and nothing clinical.

// AlertText tells the patient a secure message waits, with the link.
func AlertText(lang, clinic, link string) string {
	if lang == "es" {
		return fmt.Sprintf("%s: tiene un mensaje seguro nuevo. Ábralo aquí: %s", clinic, link)
	}
	return fmt.Sprintf("%s: you have a new secure message. Open it here: %s", clinic, link)
}

// CodeText carries the one-time code.
func CodeText(lang, clinic, code string, lifetime time.Duration) string {
	minutes := int(lifetime.Minutes())
	if lang == "es" {
		return fmt.Sprintf("%s: su código es %s. Vence en %d minutos. No lo comparta con nadie.", clinic, code, minutes)
	}
	return fmt.Sprintf("%s: your code is %s. It expires in %d minutes. Do not share it with anyone.", clinic, code, minutes)
}

// ReminderText answers a patient who texts while the conversation is secure.
func ReminderText(lang, clinic string) string {
	if lang == "es" {
		return fmt.Sprintf("%s: recibimos su mensaje. Nuestras respuestas le llegan por el enlace seguro que le enviamos por SMS.", clinic)
	}
	return fmt.Sprintf("%s: we received your text. Our replies reach you through the secure link we texted you.", clinic)
}
