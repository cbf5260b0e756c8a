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
        userId: cfg.user, deviceId: cfg.device, roomId: cfg.room, emit, log: (s) => console.debug(s),
    });
    state.device = device;
    mark("keys_uploaded");
    setState("ready", "Setting up…");
    const xs = await device.crossSign();
    state.crossSigned = { has_master: xs.has_master, has_self_signing: xs.has_self_signing, has_user_signing: xs.has_user_signing };
    mark("cross_signed");
    setState("cross-signed", "Secure");
    button.disabled = false;
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
