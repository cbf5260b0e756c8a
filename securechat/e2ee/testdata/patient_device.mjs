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
//       it through the proxy's send route; answers {"type":"sent","event_id":…,"recipients":…}
//       (recipients: per to-device type, the "user|device" each share addressed). It shares
//       only with devices their owner signed (CollectStrategy.identityBasedStrategy): others get
//       m.room_key.withheld m.unverified.
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
import { startPatientDevice } from "../page/patient_core.mjs";

const writeErr = (...args) =>
    process.stderr.write(new Date().toISOString().slice(11, 23) + " " + args.map(String).join(" ") + "\n");
console.log = console.info = console.debug = console.warn = console.error = console.trace = writeErr;

const [nodeModules, proxyBase, eventsURL, userId, deviceId, roomId] = process.argv.slice(2);
const wasm = await import(pathToFileURL(join(nodeModules, "@matrix-org/matrix-sdk-crypto-wasm/node.mjs")).href);

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
    if (obj.fatal) process.exit(1);
}

// The crypto (requests through the proxy, the long poll, decryption, cross-signing, replies)
// is patient_core.mjs, the same module the browser page runs.
const device = await startPatientDevice({ wasm, proxyBase, eventsURL, userId, deviceId, roomId, emit, log: writeErr });

const commands = {
    reply: (req) => device.reply(req.body, req.users),
    cross_sign: () => device.crossSign(),
    stats: async () => device.stats(),
};

const rl = createInterface({ input: process.stdin });
rl.on("line", (text) => {
    text = text.trim();
    if (!text) return;
    let req;
    try {
        req = JSON.parse(text);
    } catch (e) {
        emit({ type: "error", message: `bad command line: ${e}` });
        return;
    }
    if (req.cmd === "quit") process.exit(0);
    const run = commands[req.cmd];
    if (!run) {
        emit({ type: "error", message: `unknown command ${JSON.stringify(req.cmd)}`, req_id: req.req_id ?? "" });
        return;
    }
    run(req).then(
        (out) => emit({ ...out, req_id: req.req_id ?? "" }),
        (e) => emit({ type: "error", message: `${req.cmd}: ${e?.message ?? e}`, req_id: req.req_id ?? "" }),
    );
});
rl.on("close", () => process.exit(0));
emit({ type: "ready", user_id: userId, device_id: deviceId });
