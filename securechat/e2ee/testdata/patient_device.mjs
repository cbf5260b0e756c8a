// A patient's browser device, in Node, on Element's Rust crypto (matrix-sdk-crypto-wasm's
// OlmMachine), for the spike of issue 18 (docs/e2ee-to-the-patient.md, step 3).
//
// It talks to nothing but the two endpoints the secure chat would give a patient page: the
// allowlist proxy (PROXY_BASE + /_matrix/client/…, relayed by appservice masquerading as the
// patient-web user and this device) and the events long poll (EVENTS_URL, what the homeserver
// pushed to the appservice for this device, shaped for receiveSyncChanges). It holds no Matrix
// token and does no /sync. Its store is memory, as a tab without IndexedDB.
//
// It speaks JSON lines: events and replies on stdout, commands on stdin.
//   {"cmd":"reply","req_id":"2","body":"…"}
//       shares a Megolm room key with the devices of the room's members as the page knows them
//       from the member events it was given (or "users", if the command names them), keys/query,
//       keys/claim and olm to-device all through the proxy, encrypts an m.room.message and PUTs
//       it through the proxy's send route; answers {"type":"sent","event_id":…}.
//   {"cmd":"cross_sign","req_id":"3"}
//       bootstraps the patient-web user's cross-signing (keys/device_signing/upload, then the
//       self-signing key's signature of this device by keys/signatures/upload) and answers
//       {"type":"cross_signed","has_master":…,"has_self_signing":…,"has_user_signing":…}.
//   {"cmd":"quit"}
// The secure room's timeline comes in the same long poll (room_events, filed by the inbox from
// the appservice transactions). For each event it prints {"type":"room_event",…} (type, sender,
// state_key, membership; never content); it keeps the member events' joins and invites as the
// room's members, and decrypts each m.room.encrypted event as soon as it has the room key
// (retrying after each batch), printing {"type":"decrypted","event_id":…,"body":…,
// "sender_device":…,"waited_ms":…} (waited_ms: from the event's arrival to its decryption).
//
// It prints {"type":"ready"} once its device keys and one-time keys are on the homeserver, and
// {"type":"to_device",…} for each batch of to-device events (types and whether they decrypted,
// never their content).
//
// Usage: node patient_device.mjs NODE_MODULES PROXY_BASE EVENTS_URL USER_ID DEVICE_ID ROOM_ID

import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const writeErr = (...args) =>
    process.stderr.write(new Date().toISOString().slice(11, 23) + " " + args.map(String).join(" ") + "\n");
console.log = console.info = console.debug = console.warn = console.error = console.trace = writeErr;

const [nodeModules, proxyBase, eventsURL, userId, deviceId, roomId] = process.argv.slice(2);
const wasm = await import(pathToFileURL(join(nodeModules, "@matrix-org/matrix-sdk-crypto-wasm/node.mjs")).href);
const {
    OlmMachine, UserId, DeviceId, RoomId, DeviceLists, RequestType, EncryptionSettings, HistoryVisibility,
    DecryptionSettings, TrustRequirement, ProcessedToDeviceEventType,
} = wasm;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}
function emitError(message, extra = {}) {
    emit({ type: "error", message, ...extra });
}

const machine = await OlmMachine.initialize(new UserId(userId), new DeviceId(deviceId));
const stats = { requests: {}, refused: 0, uploaded: 0 };

// ---- requests, through the proxy --------------------------------------------------

const enc = encodeURIComponent;
function route(req) {
    switch (req.type) {
        case RequestType.KeysUpload:
            return ["POST", "/_matrix/client/v3/keys/upload", req.body];
        case RequestType.KeysQuery:
            return ["POST", "/_matrix/client/v3/keys/query", req.body];
        case RequestType.KeysClaim:
            return ["POST", "/_matrix/client/v3/keys/claim", req.body];
        case RequestType.ToDevice:
            return ["PUT", `/_matrix/client/v3/sendToDevice/${enc(req.event_type)}/${enc(req.txn_id)}`, req.body];
        case RequestType.SignatureUpload:
            return ["POST", "/_matrix/client/v3/keys/signatures/upload", req.body];
        case RequestType.RoomMessage:
            return ["PUT", `/_matrix/client/v3/rooms/${enc(req.room_id)}/send/${enc(req.event_type)}/${enc(req.txn_id)}`, req.body];
        default:
            return null; // KeysBackup: the page has no backup
    }
}
const typeName = (t) => Object.keys(RequestType).find((k) => RequestType[k] === t) ?? String(t);

async function call(method, path, body) {
    const resp = await fetch(proxyBase + path, {
        method,
        headers: { "Content-Type": "application/json" },
        body,
    });
    const text = await resp.text();
    return { status: resp.status, text };
}

// send relays one OlmMachine request and marks it sent; a refusal is reported and the request
// stays in the machine's queue (it comes back from outgoingRequests).
async function send(req) {
    const r = route(req);
    const name = typeName(req.type);
    if (!r) return false;
    if (req.type === RequestType.KeysUpload) {
        // What is uploaded, by kind and count (never the keys), for the test's report.
        const b = JSON.parse(req.body);
        writeErr(`keys/upload: device_keys ${Boolean(b.device_keys)}, one_time_keys ${Object.keys(b.one_time_keys ?? {}).length}, fallback_keys ${Object.keys(b.fallback_keys ?? {}).length}`);
    }
    const { status, text } = await call(...r);
    stats.requests[name] = (stats.requests[name] ?? 0) + 1;
    if (status !== 200) {
        stats.refused++;
        emitError(`${name} answered ${status}`, { status, errcode: safeErrcode(text) });
        return false;
    }
    // bootstrapCrossSigning's signature upload has no id: nothing to mark.
    if (req.id !== undefined) await machine.markRequestAsSent(req.id, req.type, text);
    if (req.type === RequestType.KeysUpload) stats.uploaded++;
    return true;
}
function safeErrcode(text) {
    try {
        return JSON.parse(text).errcode ?? "";
    } catch {
        return "";
    }
}

// One drain at a time: outgoingRequests returns what is not marked sent yet, so two drains
// at once would send a request twice. Cross-signing's bootstrap runs in the same line.
let draining = Promise.resolve();
function exclusive(fn) {
    const run = draining.then(fn);
    draining = run.catch((e) => emitError(`drain: ${e?.stack ?? e}`));
    return run;
}
function drain() {
    return exclusive(async () => {
        for (const req of await machine.outgoingRequests()) {
            await send(req);
        }
    });
}

// crossSign makes the patient-web user's cross-signing identity (master, self-signing and
// user-signing keys, private parts only in this machine) and signs this device with it, as
// Element does at a first login: bootstrapCrossSigning's requests in their order, all through
// the proxy. The homeserver lets a user upload its first cross-signing keys without
// user-interactive auth; the proxy refuses any `auth` (the patient-web user has no password).
function crossSign() {
    return exclusive(async () => {
        const started = Date.now();
        const reqs = await machine.bootstrapCrossSigning(true);
        if (reqs.uploadKeysRequest && !(await send(reqs.uploadKeysRequest))) {
            throw new Error("the device keys upload before cross-signing was refused");
        }
        const up = await call("POST", "/_matrix/client/v3/keys/device_signing/upload", reqs.uploadSigningKeysRequest.body);
        stats.requests.UploadSigningKeys = (stats.requests.UploadSigningKeys ?? 0) + 1;
        if (up.status !== 200) {
            stats.refused++;
            let flows = "";
            try {
                flows = JSON.stringify(JSON.parse(up.text).flows ?? null);
            } catch {}
            throw new Error(`keys/device_signing/upload answered ${up.status} ${safeErrcode(up.text)} flows ${flows}`);
        }
        if (!(await send(reqs.uploadSignaturesRequest))) {
            throw new Error("the self-signing key's signature of this device was refused");
        }
        const status = await machine.crossSigningStatus();
        return {
            type: "cross_signed",
            has_master: status.hasMaster, has_self_signing: status.hasSelfSigning, has_user_signing: status.hasUserSigning,
            took_ms: Date.now() - started,
        };
    });
}

// ---- the events long poll -----------------------------------------------------------

let since = "";
let batches = 0;
async function pollLoop() {
    for (;;) {
        let b;
        try {
            const resp = await fetch(`${eventsURL}?since=${enc(since)}&timeout=10000`);
            if (resp.status !== 200) {
                emitError(`events answered ${resp.status}`);
                await new Promise((r) => setTimeout(r, 500));
                continue;
            }
            b = await resp.json();
        } catch (e) {
            emitError(`events: ${e}`);
            await new Promise((r) => setTimeout(r, 500));
            continue;
        }
        const counts = new Map(Object.entries(b.device_one_time_keys_count ?? {}));
        const lists = new DeviceLists(
            (b.device_lists?.changed ?? []).map((u) => new UserId(u)),
            (b.device_lists?.left ?? []).map((u) => new UserId(u)),
        );
        const fallback = b.device_unused_fallback_key_types ? new Set(b.device_unused_fallback_key_types) : undefined;
        const toDevice = JSON.stringify(b.to_device?.events ?? []);
        // Until the homeserver reported a count, none is "unknown", not "zero" (MSC4186 semantics).
        const receive = counts.size > 0 ? machine.receiveSyncChanges.bind(machine) : machine.receiveSyncChangesMsc4186.bind(machine);
        writeErr(`events batch: ${b.to_device?.events?.length ?? 0} to-device, counts ${JSON.stringify(b.device_one_time_keys_count ?? {})}, fallback ${JSON.stringify(b.device_unused_fallback_key_types ?? null)}`);
        const processed = await receive(toDevice, lists, counts, fallback, new DecryptionSettings(TrustRequirement.Untrusted));
        since = b.next_batch;
        batches++;
        for (const ev of b.room_events ?? []) {
            roomEvents++;
            if (ev.type === "m.room.member" && typeof ev.state_key === "string") {
                const m = ev.content?.membership;
                if (m === "join" || m === "invite") members.add(ev.state_key);
                else members.delete(ev.state_key);
            }
            emit({ type: "room_event", event_id: ev.event_id, event_type: ev.type, sender: ev.sender,
                state_key: ev.state_key ?? "", membership: ev.type === "m.room.member" ? (ev.content?.membership ?? "") : "" });
            if (ev.type === "m.room.encrypted") pending.push({ ev, arrived: Date.now() });
        }
        if (processed.length > 0 || b.missed) {
            emit({
                type: "to_device",
                missed: Boolean(b.missed),
                events: processed.map((p) => {
                    const raw = JSON.parse(p.rawEvent);
                    return {
                        type: raw.type ?? "",
                        sender: raw.sender ?? "",
                        decrypted: p.type === ProcessedToDeviceEventType.Decrypted,
                        utd: p.type === ProcessedToDeviceEventType.UnableToDecrypt,
                    };
                }),
            });
        }
        await drain();
        await decryptPending();
    }
}

// ---- the secure room's timeline ------------------------------------------------------

let roomEvents = 0;
const members = new Set();
let pending = []; // encrypted events whose room key has not come yet

async function decryptPending() {
    const still = [];
    for (const p of pending) {
        try {
            const d = await machine.decryptRoomEvent(JSON.stringify(p.ev), new RoomId(roomId),
                new DecryptionSettings(TrustRequirement.Untrusted));
            const ev = JSON.parse(d.event);
            emit({
                type: "decrypted",
                event_id: p.ev.event_id ?? "",
                sender: d.sender.toString(),
                sender_device: d.senderDevice?.toString() ?? "",
                event_type: ev.type ?? "",
                body: ev.content?.body ?? "",
                waited_ms: Date.now() - p.arrived,
            });
        } catch (e) {
            still.push(p); // its room key comes in a later to-device batch
        }
    }
    pending = still;
}

// ---- commands -----------------------------------------------------------------------

const commands = {
    async reply(req) {
        const list = req.users ?? [...new Set([...members, userId])];
        const users = () => list.map((u) => new UserId(u));
        await machine.updateTrackedUsers(users());
        await drain(); // keys/query of the members
        const claim = await machine.getMissingSessions(users());
        if (claim) await send(claim);
        const settings = new EncryptionSettings();
        settings.historyVisibility = HistoryVisibility.Shared;
        const shares = await machine.shareRoomKey(new RoomId(roomId), users(), settings);
        for (const s of shares) {
            if (!(await send(s))) throw new Error("sharing the room key was refused");
        }
        const content = await machine.encryptRoomEvent(new RoomId(roomId), "m.room.message",
            JSON.stringify({ msgtype: "m.text", body: req.body }));
        const txn = `pw${Date.now()}${Math.random().toString(36).slice(2, 8)}`;
        const { status, text } = await call("PUT",
            `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.encrypted/${txn}`, content);
        if (status !== 200) throw new Error(`send answered ${status} ${safeErrcode(text)}`);
        return { type: "sent", event_id: JSON.parse(text).event_id, shared_with_devices: shares.length };
    },
    async cross_sign() {
        return crossSign();
    },
    async stats() {
        return { type: "stats", batches, room_events: roomEvents, undecrypted: pending.length, members: [...members].sort(), ...stats };
    },
};

const rl = createInterface({ input: process.stdin });
rl.on("line", (text) => {
    text = text.trim();
    if (!text) return;
    let req;
    try {
        req = JSON.parse(text);
    } catch (e) {
        emitError(`bad command line: ${e}`);
        return;
    }
    if (req.cmd === "quit") process.exit(0);
    const run = commands[req.cmd];
    if (!run) {
        emitError(`unknown command ${JSON.stringify(req.cmd)}`, { req_id: req.req_id ?? "" });
        return;
    }
    run(req).then(
        (out) => emit({ ...out, req_id: req.req_id ?? "" }),
        (e) => emitError(`${req.cmd}: ${e?.message ?? e}`, { req_id: req.req_id ?? "" }),
    );
});
rl.on("close", () => process.exit(0));

// Ready once the device's keys are uploaded (the first outgoing requests: keys/upload, and
// keys/query of the patient-web user itself).
for (let i = 0; ; i++) {
    await drain();
    if (stats.uploaded > 0) break;
    if (i === 50) throw new Error("the device keys were never uploaded");
    await new Promise((r) => setTimeout(r, 100));
}
pollLoop().catch((e) => {
    emitError(`poll loop: ${e?.stack ?? e}`);
    process.exit(1);
});
emit({ type: "ready", user_id: userId, device_id: deviceId });
