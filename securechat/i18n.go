package securechat

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/text/language"
)

// The languages of the patient pages. The SMS texts (texts.go) speak the same two.
const (
	langEnglish = "en"
	langSpanish = "es"
)

// langCookie keeps a patient's choice of language from the switch link (?lang=).
const langCookie = "lang"

// catalog is every string of the pages in one language; values are fmt formats.
type catalog map[string]string

var catalogs = map[string]catalog{
	langEnglish: {
		"lang.name": "English",

		"page.secure": "Secure messages",

		"link.title":   "Secure message from %s",
		"link.heading": "%s sent you a secure message",
		"link.why":     "To keep your health information private, we do not send it by text message.",
		"link.how":     "To open it, we will text a 6-digit code to your phone ending in %s.",
		"link.button":  "Text me a code",
		"link.private": "This link is just for you. Please do not share it.",

		"code.title":       "Enter your code",
		"code.heading":     "Enter the code we texted you",
		"code.sent":        "We texted a 6-digit code to your phone ending in %s. It works for %d minutes.",
		"code.intro":       "Enter the 6-digit code from the text message we sent to your phone ending in %s.",
		"code.label":       "6-digit code",
		"code.button":      "Open my messages",
		"code.resend_hint": "No code? It can take a minute to arrive. You can ask for a new one.",
		"code.resend":      "Text me a new code",
		"code.tries_left":  "You have %d tries left. After that, this link locks and you will need to ask the clinic for a new one.",
		"code.try_left":    "You have 1 try left. After that, this link locks and you will need to ask the clinic for a new one.",

		"dob.legend": "Your date of birth",
		"dob.hint":   "The clinic asks for it to make sure this is you.",
		"dob.month":  "Month",
		"dob.day":    "Day",
		"dob.year":   "Year",

		"err.code_format":  "Enter the 6 digits from the text message.",
		"err.dob_format":   "Enter your date of birth: month, day and year (4 digits).",
		"err.wrong":        "That code is not right. Check the text message and try again.",
		"err.wrong_dob":    "That code or date of birth is not right. Check the text message and your date of birth, and try again.",
		"err.code_expired": "That code has expired. Tap “Text me a new code” to get another one.",
		"err.no_code":      "We have not sent you a code yet. Tap “Text me a new code”.",
		"err.rate_limited": "We have sent several codes in the last hour. Please use the newest code we texted you, or try again in an hour.",
		"err.sms_failed":   "We could not text you a code just now. Please try again in a few minutes. If you replied STOP to the clinic’s texts, reply START first.",
		"err.empty":        "Write a message first.",
		"err.too_long":     "This message is too long. Please keep it under 5,000 characters, or send it in parts.",
		"err.upload_type":  "This file cannot be sent. Please send a photo (JPEG, PNG, HEIC or WebP) or a PDF.",
		"err.upload_large": "This file is too large. The limit is %d MB.",
		"err.upload_none":  "Choose a photo or file first.",
		"err.upload_net":   "The file could not be sent. Check your connection and try again.",
		"err.send_net":     "Your message could not be sent. Check your connection and try again.",

		"notice.unknown.title":   "Link not found",
		"notice.unknown.heading": "This link does not work",
		"notice.unknown.body":    "It may be incomplete or mistyped. Text %s and ask for a new link. A person will reply.",
		"notice.expired.title":   "Link expired",
		"notice.expired.heading": "This link has expired",
		"notice.expired.body":    "For your privacy, links work for a limited time. Text %s and ask for a new link. A person will reply.",
		"notice.revoked.title":   "Link turned off",
		"notice.revoked.heading": "This link no longer works",
		"notice.revoked.body":    "The clinic has turned this link off. Text %s and ask for a new link. A person will reply.",
		"notice.locked.title":    "Link locked",
		"notice.locked.heading":  "This link is locked",
		"notice.locked.body":     "A wrong code was entered too many times, so we locked this link to protect your messages. Text %s and ask for a new link. A person will reply.",
		"notice.text_clinic":     "Text the clinic",
		"notice.clinic_number":   "The clinic’s number is %s.",
		"notice.clinic":          "the clinic",
		"notice.new_link_text":   "Please send me a new secure link",

		"footer.number":        "Text the clinic:",
		"footer.help":          "Help",
		"footer.privacy":       "Privacy",
		"footer.accessibility": "Accessibility",

		"notice.signedout.title":   "Signed out",
		"notice.signedout.heading": "You are signed out",
		"notice.signedout.body":    "To read your messages again, open the link in the clinic’s text message. If the link no longer works, text the clinic and ask for a new one.",
		"notice.signedout.idle":    "For your privacy, you are signed out after a while without activity.",

		"notice.csrf.title":   "Please try again",
		"notice.csrf.heading": "Please try again",
		"notice.csrf.body":    "This page was open for too long, or your browser blocked a cookie this site needs. Go back, reload the page and try again.",
		"notice.csrf.back":    "Start again",

		"notice.error.title":   "Something went wrong",
		"notice.error.heading": "Something went wrong",
		"notice.error.body":    "Sorry, something went wrong on our side. Please try again in a few minutes.",

		"notice.notfound.title":   "Not found",
		"notice.notfound.heading": "Not found",
		"notice.notfound.body":    "This file is not part of your messages.",
		"notice.back_chat":        "Back to my messages",

		"chat.title":          "Messages with %s",
		"chat.heading":        "Your messages",
		"chat.empty":          "No messages yet.",
		"chat.you":            "You",
		"chat.write_label":    "Write a message",
		"chat.send":           "Send",
		"chat.upload_heading": "Send a photo or document",
		"chat.upload_hint":    "Photos (JPEG, PNG, HEIC, WebP) or PDF files, up to %d MB.",
		"chat.camera_label":   "Take a photo",
		"chat.choose_label":   "Choose a photo or PDF",
		"chat.upload_button":  "Send file",
		"chat.uploading":      "Sending…",
		"chat.uploaded":       "Sent.",
		"chat.pending":        "Your message is saved. The clinic may see it a little later.",
		"chat.signout":        "Sign out",
		"chat.signout_hint":   "For your privacy, you are signed out after %d minutes without activity. Sign out when you are done, especially on a shared phone.",
		"chat.open_file":      "Open %s",
		"chat.photo_you":      "Photo you sent, %s",
		"chat.chosen":         "Chosen: %s",
		"chat.check":          "Check for new messages",
		"chat.photo_from":     "Photo from %s, %s",
		"chat.seen":           "Seen by the clinic",
		"chat.typing_one":     "%s is typing…",
		"chat.typing_many":    "%s are typing…",
		"chat.and":            "%s and %s",
	},
	langSpanish: {
		"lang.name": "Español",

		"page.secure": "Mensajes seguros",

		"link.title":   "Mensaje seguro de %s",
		"link.heading": "%s le envió un mensaje seguro",
		"link.why":     "Para proteger su información de salud, no la enviamos por mensaje de texto.",
		"link.how":     "Para abrirlo, le enviaremos un código de 6 dígitos por mensaje de texto a su teléfono que termina en %s.",
		"link.button":  "Envíenme un código",
		"link.private": "Este enlace es solo para usted. Por favor, no lo comparta.",

		"code.title":       "Escriba su código",
		"code.heading":     "Escriba el código que le enviamos",
		"code.sent":        "Le enviamos un código de 6 dígitos a su teléfono que termina en %s. Sirve durante %d minutos.",
		"code.intro":       "Escriba el código de 6 dígitos del mensaje de texto que le enviamos a su teléfono que termina en %s.",
		"code.label":       "Código de 6 dígitos",
		"code.button":      "Ver mis mensajes",
		"code.resend_hint": "¿No le llegó el código? Puede tardar un minuto. Puede pedir uno nuevo.",
		"code.resend":      "Envíenme un código nuevo",
		"code.tries_left":  "Le quedan %d intentos. Después, este enlace se bloquea y tendrá que pedirle uno nuevo a la clínica.",
		"code.try_left":    "Le queda 1 intento. Después, este enlace se bloquea y tendrá que pedirle uno nuevo a la clínica.",

		"dob.legend": "Su fecha de nacimiento",
		"dob.hint":   "La clínica la pide para confirmar que es usted.",
		"dob.month":  "Mes",
		"dob.day":    "Día",
		"dob.year":   "Año",

		"err.code_format":  "Escriba los 6 dígitos del mensaje de texto.",
		"err.dob_format":   "Escriba su fecha de nacimiento: día, mes y año (4 dígitos).",
		"err.wrong":        "Ese código no es correcto. Revise el mensaje de texto e inténtelo de nuevo.",
		"err.wrong_dob":    "El código o la fecha de nacimiento no es correcto. Revise el mensaje de texto y su fecha de nacimiento, e inténtelo de nuevo.",
		"err.code_expired": "Ese código venció. Toque «Envíenme un código nuevo» para recibir otro.",
		"err.no_code":      "Todavía no le enviamos un código. Toque «Envíenme un código nuevo».",
		"err.rate_limited": "Le enviamos varios códigos en la última hora. Use el código más reciente que le enviamos o vuelva a intentarlo en una hora.",
		"err.sms_failed":   "No pudimos enviarle un código en este momento. Inténtelo de nuevo en unos minutos. Si respondió STOP a los mensajes de la clínica, responda START primero.",
		"err.empty":        "Escriba un mensaje primero.",
		"err.too_long":     "Este mensaje es demasiado largo. Escriba menos de 5000 caracteres o envíelo en partes.",
		"err.upload_type":  "Este archivo no se puede enviar. Envíe una foto (JPEG, PNG, HEIC o WebP) o un PDF.",
		"err.upload_large": "Este archivo es demasiado grande. El límite es de %d MB.",
		"err.upload_none":  "Elija primero una foto o un archivo.",
		"err.upload_net":   "No se pudo enviar el archivo. Revise su conexión e inténtelo de nuevo.",
		"err.send_net":     "No se pudo enviar su mensaje. Revise su conexión e inténtelo de nuevo.",

		"notice.unknown.title":   "Enlace no encontrado",
		"notice.unknown.heading": "Este enlace no funciona",
		"notice.unknown.body":    "Puede estar incompleto o mal escrito. Envíe un mensaje de texto a %s y pida un enlace nuevo. Una persona le responderá.",
		"notice.expired.title":   "Enlace vencido",
		"notice.expired.heading": "Este enlace venció",
		"notice.expired.body":    "Para proteger su privacidad, los enlaces funcionan por un tiempo limitado. Envíe un mensaje de texto a %s y pida un enlace nuevo. Una persona le responderá.",
		"notice.revoked.title":   "Enlace desactivado",
		"notice.revoked.heading": "Este enlace ya no funciona",
		"notice.revoked.body":    "La clínica desactivó este enlace. Envíe un mensaje de texto a %s y pida un enlace nuevo. Una persona le responderá.",
		"notice.locked.title":    "Enlace bloqueado",
		"notice.locked.heading":  "Este enlace está bloqueado",
		"notice.locked.body":     "Se escribió un código equivocado demasiadas veces, así que bloqueamos este enlace para proteger sus mensajes. Envíe un mensaje de texto a %s y pida un enlace nuevo. Una persona le responderá.",
		"notice.text_clinic":     "Enviar un mensaje a la clínica",
		"notice.clinic_number":   "El número de la clínica es %s.",
		"notice.clinic":          "la clínica",
		"notice.new_link_text":   "Por favor, envíenme un enlace seguro nuevo",

		"footer.number":        "Mensaje de texto a la clínica:",
		"footer.help":          "Ayuda",
		"footer.privacy":       "Privacidad",
		"footer.accessibility": "Accesibilidad",

		"notice.signedout.title":   "Sesión cerrada",
		"notice.signedout.heading": "Su sesión está cerrada",
		"notice.signedout.body":    "Para volver a leer sus mensajes, abra el enlace del mensaje de texto de la clínica. Si el enlace ya no funciona, envíe un mensaje de texto a la clínica y pida uno nuevo.",
		"notice.signedout.idle":    "Para proteger su privacidad, la sesión se cierra después de un rato sin actividad.",

		"notice.csrf.title":   "Inténtelo de nuevo",
		"notice.csrf.heading": "Inténtelo de nuevo",
		"notice.csrf.body":    "Esta página estuvo abierta demasiado tiempo o su navegador bloqueó una cookie que este sitio necesita. Vuelva atrás, recargue la página e inténtelo de nuevo.",
		"notice.csrf.back":    "Empezar de nuevo",

		"notice.error.title":   "Algo salió mal",
		"notice.error.heading": "Algo salió mal",
		"notice.error.body":    "Lo sentimos, algo salió mal de nuestra parte. Inténtelo de nuevo en unos minutos.",

		"notice.notfound.title":   "No encontrado",
		"notice.notfound.heading": "No encontrado",
		"notice.notfound.body":    "Este archivo no forma parte de sus mensajes.",
		"notice.back_chat":        "Volver a mis mensajes",

		"chat.title":          "Mensajes con %s",
		"chat.heading":        "Sus mensajes",
		"chat.empty":          "Todavía no hay mensajes.",
		"chat.you":            "Usted",
		"chat.write_label":    "Escriba un mensaje",
		"chat.send":           "Enviar",
		"chat.upload_heading": "Enviar una foto o un documento",
		"chat.upload_hint":    "Fotos (JPEG, PNG, HEIC, WebP) o archivos PDF, de hasta %d MB.",
		"chat.camera_label":   "Tomar una foto",
		"chat.choose_label":   "Elegir una foto o un PDF",
		"chat.upload_button":  "Enviar archivo",
		"chat.uploading":      "Enviando…",
		"chat.uploaded":       "Enviado.",
		"chat.pending":        "Su mensaje está guardado. Es posible que la clínica lo vea un poco más tarde.",
		"chat.signout":        "Cerrar sesión",
		"chat.signout_hint":   "Para proteger su privacidad, la sesión se cierra después de %d minutos sin actividad. Cierre la sesión cuando termine, sobre todo en un teléfono compartido.",
		"chat.open_file":      "Abrir %s",
		"chat.photo_you":      "Foto que usted envió, %s",
		"chat.chosen":         "Elegido: %s",
		"chat.check":          "Ver si hay mensajes nuevos",
		"chat.photo_from":     "Foto de %s, %s",
		"chat.seen":           "Visto por la clínica",
		"chat.typing_one":     "%s está escribiendo…",
		"chat.typing_many":    "%s están escribiendo…",
		"chat.and":            "%s y %s",
	},
}

var monthsShort = map[string][12]string{
	langEnglish: {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
	langSpanish: {"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"},
}

// translate returns the catalog string for key, formatted with args. A missing key
// shows as such, so that a test finds it on the page.
func translate(lang, key string, args ...any) string {
	format, ok := catalogs[lang][key]
	if !ok {
		if format, ok = catalogs[langEnglish][key]; !ok {
			return "[missing: " + key + "]"
		}
	}
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// otherLang is the language the switch link offers.
func otherLang(lang string) string {
	if lang == langSpanish {
		return langEnglish
	}
	return langSpanish
}

func supportedLang(lang string) bool {
	_, ok := catalogs[lang]
	return ok
}

// chooseLang picks the page language: ?lang= (remembered in a cookie), then the cookie,
// then Accept-Language, then the configured default.
func (w *Web) chooseLang(rw http.ResponseWriter, r *http.Request) string {
	if q := r.URL.Query().Get("lang"); supportedLang(q) {
		http.SetCookie(rw, &http.Cookie{Name: langCookie, Value: q, Path: "/", MaxAge: 365 * 24 * 3600,
			Secure: !w.opts.InsecureCookies, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return q
	}
	if c, err := r.Cookie(langCookie); err == nil && supportedLang(c.Value) {
		return c.Value
	}
	if lang := acceptLanguage(r.Header.Get("Accept-Language")); lang != "" {
		return lang
	}
	if supportedLang(w.svc.Config.Language) {
		return w.svc.Config.Language
	}
	return langEnglish
}

// pageLanguages are the pages' languages for the matcher, English first: the fallback.
var pageLanguages = []language.Tag{language.English, language.Spanish}

var languageMatcher = language.NewMatcher(pageLanguages)

// acceptLanguage returns the supported language the browser's Accept-Language prefers
// most (es-MX and es-419 are Spanish), or "" when it names none of them.
func acceptLanguage(header string) string {
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil || len(tags) == 0 {
		return ""
	}
	_, index, confidence := languageMatcher.Match(tags...)
	if confidence < language.High {
		return "" // no language of the pages was asked for (the matcher's guesses are not)
	}
	base, _ := pageLanguages[index].Base()
	return base.String()
}

// formatTime shows a message time in the clinic's zone (business_hours.time_zone); the
// page's script rewrites it in the phone's own zone.
func formatTime(lang string, t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	month := monthsShort[lang][t.Month()-1]
	if lang == langSpanish {
		return fmt.Sprintf("%d %s, %s", t.Day(), month, t.Format("15:04"))
	}
	return fmt.Sprintf("%s %d, %s", month, t.Day(), t.Format("3:04 PM"))
}

// formatSize shows a file size in B, KB or MB.
func formatSize(size int64) string {
	switch {
	case size < 1000:
		return fmt.Sprintf("%d B", size)
	case size < 1000*1000:
		return fmt.Sprintf("%d KB", (size+500)/1000)
	default:
		return fmt.Sprintf("%.1f MB", float64(size)/1e6)
	}
}
