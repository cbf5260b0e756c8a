package testenv

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const twilioAccountsPrefix = "/" + twilioAPIVersion + "/Accounts/"

// serveAPI authenticates every request as Twilio does (HTTP basic auth with the account
// SID and auth token) before routing it, so that even a wrong path answers 401 first.
func (f *FakeTwilio) serveAPI(w http.ResponseWriter, r *http.Request) {
	// Twilio's pace; a create-message request may hang for its recipient.
	to := ""
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json") && r.ParseForm() == nil {
		to = r.PostForm.Get("To")
	}
	if !f.pace(r, to) {
		return
	}
	acct := f.authenticate(r)
	if acct == nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeTwilioError(w, http.StatusUnauthorized, twilioErrAuthenticate, "Authenticate")
		return
	}
	segs, ok := strings.CutPrefix(r.URL.Path, twilioAccountsPrefix)
	if !ok {
		f.notFound(w, r)
		return
	}
	parts := strings.Split(segs, "/")
	pathAccount, _ := strings.CutSuffix(parts[0], ".json")
	if pathAccount != acct.sid {
		// Valid credentials for another account than the one in the path.
		writeTwilioError(w, http.StatusForbidden, twilioErrAuthenticate, "Authenticate")
		return
	}
	switch {
	case len(parts) == 1 && strings.HasSuffix(parts[0], ".json"):
		if onlyMethods(w, r, http.MethodGet) {
			f.fetchAccount(w, acct)
		}
	case len(parts) == 2 && parts[1] == "IncomingPhoneNumbers.json":
		if onlyMethods(w, r, http.MethodGet) {
			f.listNumbers(w, r, acct)
		}
	case len(parts) == 3 && parts[1] == "IncomingPhoneNumbers" && strings.HasSuffix(parts[2], ".json"):
		if onlyMethods(w, r, http.MethodGet, http.MethodPost) {
			f.numberInstance(w, r, acct, strings.TrimSuffix(parts[2], ".json"))
		}
	case len(parts) == 2 && parts[1] == "Messages.json":
		if onlyMethods(w, r, http.MethodPost, http.MethodGet) {
			if r.Method == http.MethodGet {
				f.listMessages(w, r, acct)
			} else {
				f.createMessage(w, r, acct)
			}
		}
	case len(parts) == 4 && parts[1] == "Messages" && parts[3] == "Media.json":
		if onlyMethods(w, r, http.MethodGet) {
			f.listMessageMedia(w, r, acct, parts[2])
		}
	case len(parts) == 3 && parts[1] == "Messages" && strings.HasSuffix(parts[2], ".json"):
		if onlyMethods(w, r, http.MethodGet) {
			f.fetchMessage(w, r, acct, strings.TrimSuffix(parts[2], ".json"))
		}
	case len(parts) == 5 && parts[1] == "Messages" && parts[3] == "Media":
		if onlyMethods(w, r, http.MethodGet, http.MethodHead) {
			f.redirectMedia(w, r, acct, parts[2], parts[4])
		}
	default:
		f.notFound(w, r)
	}
}

func (f *FakeTwilio) authenticate(r *http.Request) *fakeTwilioAccount {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	acct := f.accounts[user]
	if acct == nil || subtle.ConstantTimeCompare([]byte(pass), []byte(acct.authToken)) != 1 {
		return nil
	}
	return acct
}

// onlyMethods answers 405 (code 20004) unless r uses one of the methods; the fake
// answers 405 as well for methods Twilio has but the fake does not implement.
func onlyMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeTwilioError(w, http.StatusMethodNotAllowed, twilioErrMethodNotAllowed, "Method not allowed")
	return false
}

func (f *FakeTwilio) notFound(w http.ResponseWriter, r *http.Request) {
	writeTwilioError(w, http.StatusNotFound, twilioErrNotFound,
		fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
}

// parseTwilioForm reads a POST body as Twilio does: form-encoded parameters only.
func parseTwilioForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if err := r.ParseForm(); err != nil {
		writeTwilioError(w, http.StatusBadRequest, twilioErrUnparsable, "Unable to parse request: "+err.Error())
		return nil, false
	}
	return r.PostForm, true
}

func twilioDate(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func (f *FakeTwilio) fetchAccount(w http.ResponseWriter, acct *fakeTwilioAccount) {
	f.mu.Lock()
	token := acct.authToken
	f.mu.Unlock()
	base := twilioAccountsPrefix + acct.sid
	writeTwilioJSON(w, http.StatusOK, map[string]any{
		"auth_token":        token,
		"date_created":      twilioDate(acct.created),
		"date_updated":      twilioDate(acct.created),
		"friendly_name":     "My first Twilio account",
		"owner_account_sid": acct.sid,
		"sid":               acct.sid,
		"status":            "active",
		"subresource_uris": map[string]string{
			"incoming_phone_numbers": base + "/IncomingPhoneNumbers.json",
			"messages":               base + "/Messages.json",
			"addresses":              base + "/Addresses.json",
			"calls":                  base + "/Calls.json",
		},
		"type": "Full",
		"uri":  base + ".json",
	})
}

// twilioNumberFilter turns Twilio's PhoneNumber filter into a matcher: partial numbers
// match anywhere and '*' stands for any digit; a full E.164 number matches only itself.
func twilioNumberFilter(pattern string) *regexp.Regexp {
	var b strings.Builder
	for _, r := range pattern {
		if r == '*' {
			b.WriteString(`\d`)
		} else {
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return regexp.MustCompile(b.String())
}

func (f *FakeTwilio) listNumbers(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount) {
	q := r.URL.Query()
	pageSize := 50
	if n, err := strconv.Atoi(q.Get("PageSize")); err == nil && n > 0 {
		pageSize = min(n, 1000)
	}
	page := 0
	if n, err := strconv.Atoi(q.Get("Page")); err == nil && n > 0 {
		page = n
	}
	filter := q.Get("PhoneNumber")
	friendly := q.Get("FriendlyName")

	f.mu.Lock()
	var all []map[string]any
	for _, n := range f.numbers {
		if n.accountSID != acct.sid {
			continue
		}
		if filter != "" && !twilioNumberFilter(filter).MatchString(n.phoneNumber) {
			continue
		}
		if friendly != "" && n.friendlyName != friendly {
			continue
		}
		all = append(all, n.resource())
	}
	f.mu.Unlock()

	start := page * pageSize
	items := []map[string]any{}
	if start < len(all) {
		items = all[start:min(start+pageSize, len(all))]
	}
	pageURI := func(p int) string {
		v := url.Values{}
		if friendly != "" {
			v.Set("FriendlyName", friendly)
		}
		if filter != "" {
			v.Set("PhoneNumber", filter)
		}
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(p))
		return twilioAccountsPrefix + acct.sid + "/IncomingPhoneNumbers.json?" + v.Encode()
	}
	var next, prev any
	if start+len(items) < len(all) {
		next = pageURI(page + 1)
	}
	if page > 0 {
		prev = pageURI(page - 1)
	}
	end := start
	if len(items) > 0 {
		end = start + len(items) - 1
	}
	writeTwilioJSON(w, http.StatusOK, map[string]any{
		"end":                    end,
		"first_page_uri":         pageURI(0),
		"incoming_phone_numbers": items,
		"next_page_uri":          next,
		"page":                   page,
		"page_size":              pageSize,
		"previous_page_uri":      prev,
		"start":                  start,
		"uri":                    pageURI(page),
	})
}

func (f *FakeTwilio) numberInstance(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount, sid string) {
	f.mu.Lock()
	var num *fakeTwilioNumber
	for _, n := range f.numbers {
		if n.sid == sid && n.accountSID == acct.sid {
			num = n
		}
	}
	f.mu.Unlock()
	if num == nil {
		f.notFound(w, r)
		return
	}
	if r.Method == http.MethodPost {
		form, ok := parseTwilioForm(w, r)
		if !ok {
			return
		}
		if status, code, msg := f.updateNumber(num, form); code != 0 {
			writeTwilioError(w, status, code, msg)
			return
		}
	}
	f.mu.Lock()
	res := num.resource()
	f.mu.Unlock()
	writeTwilioJSON(w, http.StatusOK, res)
}

// updateNumber validates the whole form first and applies it only if all of it is
// valid, as the real API leaves the number untouched on a 400.
func (f *FakeTwilio) updateNumber(n *fakeTwilioNumber, form url.Values) (status, code int, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	urls := map[string]*string{
		"SmsUrl":           &n.smsURL,
		"SmsFallbackUrl":   &n.smsFallbackURL,
		"VoiceUrl":         &n.voiceURL,
		"VoiceFallbackUrl": &n.voiceFallbackURL,
		"StatusCallback":   &n.statusCallback,
	}
	methods := map[string]*string{
		"SmsMethod":            &n.smsMethod,
		"SmsFallbackMethod":    &n.smsFallbackMethod,
		"VoiceMethod":          &n.voiceMethod,
		"VoiceFallbackMethod":  &n.voiceFallbackMethod,
		"StatusCallbackMethod": &n.statusCallbackMethod,
	}
	for name := range urls {
		if v, ok := form[name]; ok && v[0] != "" && !isTwilioCallbackURL(v[0]) {
			return http.StatusBadRequest, twilioErrInvalidURL, name + " is not valid"
		}
	}
	for name := range methods {
		if v, ok := form[name]; ok {
			if m := strings.ToUpper(v[0]); m != http.MethodGet && m != http.MethodPost {
				return http.StatusBadRequest, twilioErrInvalidMethod, name + " must be either GET or POST"
			}
		}
	}
	for name, field := range urls {
		if v, ok := form[name]; ok {
			*field = v[0]
		}
	}
	for name, field := range methods {
		if v, ok := form[name]; ok {
			*field = strings.ToUpper(v[0])
		}
	}
	if v, ok := form["FriendlyName"]; ok {
		n.friendlyName = v[0]
		if n.friendlyName == "" {
			n.friendlyName = twilioFriendlyName(n.phoneNumber)
		}
	}
	n.updated = time.Now().UTC()
	return 0, 0, ""
}

// isTwilioCallbackURL accepts what Twilio accepts for a webhook: an absolute http or
// https URL with a host name free of underscores.
func isTwilioCallbackURL(s string) bool {
	if strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Hostname() == "" || strings.Contains(u.Hostname(), "_") {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}

func (n *fakeTwilioNumber) resource() map[string]any {
	uri := twilioAccountsPrefix + n.accountSID + "/IncomingPhoneNumbers/" + n.sid + ".json"
	return map[string]any{
		"account_sid":              n.accountSID,
		"address_requirements":     "none",
		"address_sid":              nil,
		"api_version":              twilioAPIVersion,
		"beta":                     false,
		"bundle_sid":               nil,
		"capabilities":             map[string]bool{"fax": false, "mms": true, "sms": true, "voice": true},
		"date_created":             twilioDate(n.created),
		"date_updated":             twilioDate(n.updated),
		"emergency_address_sid":    nil,
		"emergency_address_status": "unregistered",
		"emergency_status":         "Active",
		"friendly_name":            n.friendlyName,
		"identity_sid":             nil,
		"origin":                   "twilio",
		"phone_number":             n.phoneNumber,
		"sid":                      n.sid,
		"sms_application_sid":      "",
		"sms_fallback_method":      n.smsFallbackMethod,
		"sms_fallback_url":         n.smsFallbackURL,
		"sms_method":               n.smsMethod,
		"sms_url":                  n.smsURL,
		"status":                   "in-use",
		"status_callback":          n.statusCallback,
		"status_callback_method":   n.statusCallbackMethod,
		"subresource_uris": map[string]string{
			"assigned_add_ons": strings.TrimSuffix(uri, ".json") + "/AssignedAddOns.json",
		},
		"trunk_sid":              nil,
		"type":                   "local",
		"uri":                    uri,
		"voice_application_sid":  "",
		"voice_caller_id_lookup": false,
		"voice_fallback_method":  n.voiceFallbackMethod,
		"voice_fallback_url":     n.voiceFallbackURL,
		"voice_method":           n.voiceMethod,
		"voice_receive_mode":     "voice",
		"voice_url":              n.voiceURL,
	}
}
