// The patient page in a browser (docs/e2ee-to-the-patient.md, step 5): loads
// matrix-sdk-crypto-wasm's bindings and .wasm (both with subresource integrity: the bindings
// through a modulepreload link, the .wasm by fetch's integrity), then runs patient_core.mjs,
// the same crypto the Node stand-in runs, against the proxy and the events long poll of its own
// origin. It shows what it decrypts and sends what the patient types.
//
// For the test, window.__e2ee holds what the core reported (never to-device content), the
// page's timing marks (ms since navigation start) and the core's stats.
//
// ?measure=1 stops once the wasm is instantiated and an OlmMachine initialised (no request to
// the proxy): the load figures of step 5.
//
// ?passkey=enrol (done-when 4): after cross-signing, the page registers a passkey with the PRF
// extension, evaluates its PRF, derives the dehydrated device's pickle key from it (HKDF) and
// stores a dehydrated device through the proxy. ?passkey=restore: a page in a new browser (a new
// device, not cross-signed) waits for window.__e2ee.restore(), which asks the same passkey for
// the same PRF, derives the same keys, rehydrates the device and takes its room keys, reads the
// cross-signing keys from secret storage and signs itself, and stores a fresh dehydrated device
// in place of the one it opened. Enrolment also stores the cross-signing keys in secret storage. The PRF
// output and the key never leave the page; window.__e2ee.passkey holds a fingerprint (HKDF of
// the PRF output with another label, 8 bytes) so a test can compare two profiles' PRF outputs.

const app = document.getElementById("app");
const cfg = app.dataset;
const status = document.getElementById("status");
const list = document.getElementById("messages");
const form = document.getElementById("compose");
const text = document.getElementById("text");
const button = document.getElementById("send");

const state = { marks: {}, reports: [], errors: [], device: null };
window.__e2ee = state;
const mark = (name) => (state.marks[name] = Math.round(performance.now()));
function setState(s, label) {
    status.dataset.state = s;
    status.textContent = label;
}

function emit(obj) {
    if (obj.type === "error") {
        state.errors.push(obj.message);
        status.dataset.error = obj.message;
        return;
    }
    if (obj.type === "decrypted") {
        state.marks.first_decrypted ??= Math.round(performance.now());
        const li = document.createElement("li");
        li.className = "theirs";
        li.dataset.eventId = obj.event_id;
        li.dataset.sender = obj.sender;
        li.dataset.senderDevice = obj.sender_device;
        li.textContent = obj.body; // text, never markup
        list.append(li);
        state.reports.push({ type: obj.type, event_id: obj.event_id, sender: obj.sender, sender_device: obj.sender_device, waited_ms: obj.waited_ms });
        return;
    }
    state.reports.push(obj);
}

async function loadCrypto() {
    const bindings = await import(cfg.bindings);
    const { instance } = await WebAssembly.instantiateStreaming(
        fetch(cfg.wasm, { integrity: cfg.wasmIntegrity }),
        { "./matrix_sdk_crypto_wasm_bg.js": bindings },
    );
    bindings.__wbg_set_wasm(instance.exports);
    instance.exports.__wbindgen_start();
    return bindings;
}

const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const utf8 = (s) => new TextEncoder().encode(s);

// passkeyKey: with create, registers a discoverable passkey for this origin with the PRF
// extension; then asks it (any of this origin's passkeys, user verification required) for the
// PRF of a salt fixed per patient-web user, and derives two 32-byte keys with HKDF-SHA-256: the
// dehydrated device's pickle key and the secret storage key.
async function passkeyKey(create) {
    const rpId = location.hostname;
    const salt = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(`carebridge e2ee dehydrated device v1 ${cfg.user}`)));
    const info = { rp_id: rpId };
    if (create) {
        const t0 = performance.now();
        const cred = await navigator.credentials.create({ publicKey: {
            rp: { id: rpId, name: "Clinic secure messages" },
            user: { id: crypto.getRandomValues(new Uint8Array(16)), name: "patient", displayName: "Patient" },
            challenge: crypto.getRandomValues(new Uint8Array(32)),
            pubKeyCredParams: [{ type: "public-key", alg: -7 }, { type: "public-key", alg: -257 }],
            authenticatorSelection: { residentKey: "required", userVerification: "required" },
            extensions: { prf: { eval: { first: salt } } },
        } });
        const ext = cred.getClientExtensionResults();
        info.created_ms = Math.round(performance.now() - t0);
        info.prf_enabled = Boolean(ext.prf?.enabled);
        info.prf_at_create = Boolean(ext.prf?.results?.first);
        info.credential_id = b64url(cred.rawId);
        if (!info.prf_enabled) throw new Error("the passkey does not support PRF");
    }
    const t1 = performance.now();
    const assertion = await navigator.credentials.get({ publicKey: {
        rpId, challenge: crypto.getRandomValues(new Uint8Array(32)), userVerification: "required", allowCredentials: [],
        extensions: { prf: { eval: { first: salt } } },
    } });
    info.asserted_ms = Math.round(performance.now() - t1);
    info.asserted_credential_id = b64url(assertion.rawId);
    const prf = assertion.getClientExtensionResults().prf;
    info.prf_in_assertion = prf !== undefined;
    info.prf_result_fields = Object.keys(prf ?? {}).sort().join(",");
    const first = prf?.results?.first;
    state.passkey = { ...(state.passkey ?? {}), ...info };
    if (!first) throw new Error("the passkey gave no PRF output");
    info.prf_bytes = first.byteLength;
    const ikm = await crypto.subtle.importKey("raw", first, "HKDF", false, ["deriveBits"]);
    const hkdf = (label, bits) => crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: utf8(label) }, ikm, bits);
    // Two keys from one PRF output, each under its own label: the dehydrated device's pickle
    // key and the secret storage key the cross-signing keys are encrypted under.
    const pickle = new Uint8Array(await hkdf("carebridge e2ee dehydrated device pickle key v1", 256));
    const ssss = new Uint8Array(await hkdf("carebridge e2ee secret storage key v1", 256));
    info.fingerprint = hex(await hkdf("carebridge e2ee prf fingerprint (test only)", 64));
    state.passkey = { ...(state.passkey ?? {}), ...info };
    return { pickle, ssss, zero() { pickle.fill(0); ssss.fill(0); } };
}

async function main() {
    const [wasm, core] = await Promise.all([loadCrypto(), import(cfg.core)]);
    mark("wasm_ready");
    if (new URLSearchParams(location.search).has("measure")) {
        const m = await wasm.OlmMachine.initialize(new wasm.UserId(cfg.user), new wasm.DeviceId("MEASURELOAD"));
        m.close?.();
        mark("crypto_ready");
        setState("measured", "Loaded");
        return;
    }
    const origin = location.origin;
    const device = await core.startPatientDevice({
        wasm, proxyBase: origin + cfg.proxy, eventsURL: origin + cfg.events,
        userId: cfg.user, deviceId: cfg.device, roomId: cfg.room, members: JSON.parse(cfg.members || "[]"),
        emit, log: (s) => console.debug(s),
    });
    state.device = device;
    mark("keys_uploaded");
    setState("ready", "Setting up…");
    const passkey = new URLSearchParams(location.search).get("passkey");
    if (passkey === "restore") {
        // A new browser: a new device of the patient-web user with nothing from before,
        // restoring what its passkey unlocks (the dehydrated device, then the cross-signing
        // keys from secret storage).
        state.inject = (evJSON) => device.inject(JSON.parse(evJSON));
        state.restore = async () => {
            setState("restoring", "Restoring with your passkey…");
            try {
                const keys = await passkeyKey(false);
                mark("prf_ready");
                try {
                    state.rehydrated = await device.rehydrate(keys.pickle);
                    mark("rehydrated");
                    // The cross-signing keys from secret storage: this device signs itself, so
                    // staff who exclude insecure devices share new room keys with it.
                    state.crossSigning = await device.restoreCrossSigning(keys.ssss);
                    mark("cross_signed");
                    // MSC3814: the old dehydrated device's one-time keys are spent and its
                    // key is known to this page now; a fresh one takes its place.
                    state.redehydrated = await device.dehydrate(keys.pickle);
                    mark("redehydrated");
                } finally {
                    keys.zero();
                }
                setState("rehydrated", "Secure");
                button.disabled = false;
            } catch (err) {
                state.errors.push(`restore: ${err?.message ?? err}`);
                setState("restore-failed", "Could not restore with your passkey");
            }
        };
        setState("awaiting-passkey", "Restore with your passkey");
        return;
    }
    const xs = await device.crossSign();
    state.crossSigned = { has_master: xs.has_master, has_self_signing: xs.has_self_signing, has_user_signing: xs.has_user_signing };
    mark("cross_signed");
    setState("cross-signed", "Secure");
    button.disabled = false;
    if (passkey === "enrol") {
        try {
            const keys = await passkeyKey(true);
            mark("prf_ready");
            try {
                state.dehydrated = await device.dehydrate(keys.pickle);
                mark("dehydrated");
                state.secrets = await device.storeCrossSigning(keys.ssss);
                mark("secrets_stored");
            } finally {
                keys.zero();
            }
            setState("dehydrated", "Secure, with passkey recovery");
        } catch (err) {
            state.errors.push(`enrol: ${err?.message ?? err}`);
            setState("enrol-failed", "Could not set up passkey recovery");
        }
    }
}

form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = text.value.trim();
    if (!body || !state.device) return;
    button.disabled = true;
    try {
        const sent = await state.device.reply(body);
        const li = document.createElement("li");
        li.className = "mine";
        li.dataset.eventId = sent.event_id;
        li.textContent = body;
        list.append(li);
        state.reports.push({ type: "sent", event_id: sent.event_id, recipients: sent.recipients });
        text.value = "";
    } catch (err) {
        state.errors.push(`reply: ${err?.message ?? err}`);
    } finally {
        button.disabled = false;
    }
});

main().catch((err) => {
    state.errors.push(`start: ${err?.stack ?? err}`);
    setState("failed", "Could not start secure messages");
});
