//go:build e2eepatient

package e2ee

import (
	"net/http"
	"net/url"
	"strings"
)

// route is one allowed endpoint. pattern is the path after /_matrix/client/, "*" standing for
// one path segment (unescaped into call.vars, in order). check refuses the request or returns
// the body to forward (nil: none).
type route struct {
	name    string
	method  string
	pattern []string
	check   func(p *Proxy, c *call) (any, *denial)
	// slashInVars lets a "*" segment hold an escaped slash (%2F): a dehydrated device's ID is
	// the unpadded base64 of its Curve25519 key ('+' and '/' included; matrix-sdk-crypto makes
	// it so). Forwarding escapes it again (mautrix.BuildURL), so it stays one segment. Every
	// other route refuses escaped slashes.
	slashInVars bool
}

const msc3814 = "org.matrix.msc3814.v1"

// routes is the whole allowlist. Anything that matches none is refused 403, so /sync, joins,
// state events, profile, media, room creation and every other endpoint never reach the
// homeserver as the patient.
var routes = []*route{
	{"keys/upload", http.MethodPost, []string{"v3", "keys", "upload"}, (*Proxy).checkKeysUpload, false},
	{"keys/device_signing/upload", http.MethodPost, []string{"v3", "keys", "device_signing", "upload"}, (*Proxy).checkDeviceSigningUpload, false},
	{"keys/signatures/upload", http.MethodPost, []string{"v3", "keys", "signatures", "upload"}, (*Proxy).checkSignaturesUpload, false},
	{"keys/query", http.MethodPost, []string{"v3", "keys", "query"}, (*Proxy).checkKeysQuery, false},
	{"keys/claim", http.MethodPost, []string{"v3", "keys", "claim"}, (*Proxy).checkKeysClaim, false},
	{"sendToDevice", http.MethodPut, []string{"v3", "sendToDevice", "*", "*"}, (*Proxy).checkSendToDevice, false},
	{"rooms/send", http.MethodPut, []string{"v3", "rooms", "*", "send", "*", "*"}, (*Proxy).checkRoomSend, false},
	{"rooms/receipt", http.MethodPost, []string{"v3", "rooms", "*", "receipt", "*", "*"}, (*Proxy).checkReceipt, false},
	{"dehydrated_device/put", http.MethodPut, []string{"unstable", msc3814, "dehydrated_device"}, (*Proxy).checkDehydratedPut, false},
	{"dehydrated_device/get", http.MethodGet, []string{"unstable", msc3814, "dehydrated_device"}, (*Proxy).checkNoBody, false},
	{"dehydrated_device/delete", http.MethodDelete, []string{"unstable", msc3814, "dehydrated_device"}, (*Proxy).checkNoBody, false},
	{"account_data/get", http.MethodGet, []string{"v3", "user", "*", "account_data", "*"}, (*Proxy).checkAccountDataGet, false},
	{"account_data/put", http.MethodPut, []string{"v3", "user", "*", "account_data", "*"}, (*Proxy).checkAccountDataPut, false},
	{"dehydrated_device/events", http.MethodPost, []string{"unstable", msc3814, "dehydrated_device", "*", "events"}, (*Proxy).checkDehydratedEvents, true},
}

// match finds the route for an escaped request path. With no route for the method it returns
// the methods the path does allow (for a 405), or none (a 403).
func match(escapedPath, method string) (*route, []string, []string) {
	rest, ok := strings.CutPrefix(escapedPath, "/_matrix/client/")
	if !ok {
		return nil, nil, nil
	}
	raw := strings.Split(rest, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" || u == "." || u == ".." {
			return nil, nil, nil
		}
		segs[i] = u
	}
	var allow []string
	for _, rt := range routes {
		vars, ok := matchPattern(rt, segs)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, vars, nil
		}
		allow = append(allow, rt.method)
	}
	return nil, nil, allow
}

func matchPattern(rt *route, segs []string) ([]string, bool) {
	if len(rt.pattern) != len(segs) {
		return nil, false
	}
	var vars []string
	for i, p := range rt.pattern {
		switch {
		case strings.Contains(segs[i], "/") && (p != "*" || !rt.slashInVars):
			return nil, false // an escaped slash, where the route takes none
		case p == "*":
			vars = append(vars, segs[i])
		case p != segs[i]:
			return nil, false
		}
	}
	return vars, true
}
