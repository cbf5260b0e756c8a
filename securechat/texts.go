package securechat

import (
	"fmt"
	"net/url"
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

// CodeText carries the one-time code. Its last line binds the code to the pages' host
// ("@clinic.example #123456", the origin-bound format of WICG's SMS one-time codes): iOS
// and Android offer it for the code field of that site only, in one tap, and Chrome's
// WebOTP reads it for the page; a phishing site on another host gets nothing offered.
// host "" leaves the line out.
func CodeText(lang, clinic, code, host string, lifetime time.Duration) string {
	minutes := int(lifetime.Minutes())
	var text string
	if lang == "es" {
		text = fmt.Sprintf("%s: su código es %s. Vence en %d minutos. No lo comparta con nadie.", clinic, code, minutes)
	} else {
		text = fmt.Sprintf("%s: your code is %s. It expires in %d minutes. Do not share it with anyone.", clinic, code, minutes)
	}
	if host == "" {
		return text
	}
	return text + "\n\n@" + host + " #" + code
}

// codeHost is the host of the pages' public URL, for the code text's last line: a domain
// name without port (the format has no place for one).
func codeHost(publicBase string) string {
	u, err := url.Parse(publicBase)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// ChatWords stands in for the secure chat's link in a text the patient reads inside the
// secure chat (a template's {link} in secure mode): they are already there, and the alert
// texted to them carries the one live link.
func ChatWords(lang string) string {
	if lang == "es" {
		return "este chat seguro"
	}
	return "this secure chat"
}

// ReminderText answers a patient who texts while the conversation is secure.
func ReminderText(lang, clinic string) string {
	if lang == "es" {
		return fmt.Sprintf("%s: recibimos su mensaje. Nuestras respuestas le llegan por el enlace seguro que le enviamos por SMS.", clinic)
	}
	return fmt.Sprintf("%s: we received your text. Our replies reach you through the secure link we texted you.", clinic)
}
