// An E2EE Matrix client with Element's own crypto, for carebridge's integration tests.
//
// It plays a member of staff in Element: matrix-js-sdk with its Rust crypto
// (@matrix-org/matrix-sdk-crypto-wasm, vodozemac) and matrix-encrypt-attachment, the
// libraries Element Web is built on, so the bridge's encryption is checked by the code
// staff actually run. For each message it reports the shield Element would draw beside
// it (getEncryptionInfoForEvent). It speaks the JSON lines of staff_agent.py: events on
// stdout, commands on stdin (see internal/testenv/element.go).
//
// Usage: node element_agent.mjs NODE_MODULES HOMESERVER_URL USER_ID PASSWORD OPTIONS_JSON
// OPTIONS_JSON: {"exclude_insecure_devices": bool, "cross_sign": bool, "secrets": "..."}.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// matrix-js-sdk 43 wants Node 22; on Node 20 this is all it misses.
if (!Promise.withResolvers) {
    Promise.withResolvers = function () {
        let resolve, reject;
        const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

// stdout carries the protocol alone: the SDK's and the Rust crypto's logs go to stderr.
const writeErr = (...args) =>
    process.stderr.write(new Date().toISOString().slice(11, 23) + " " + args.map(String).join(" ") + "\n");
console.log = console.info = console.debug = console.warn = console.error = console.trace = writeErr;

const [nodeModules, homeserver, userId, password, optionsJSON] = process.argv.slice(2);
const options = JSON.parse(optionsJSON || "{}");
const load = (path) => import(pathToFileURL(join(nodeModules, path)).href);
const sdk = await load("matrix-js-sdk/lib/index.js");
const cryptoApi = await load("matrix-js-sdk/lib/crypto-api/index.js");
const attachments = (await load("matrix-encrypt-attachment/lib/index.js")).default
    ?? (await load("matrix-encrypt-attachment/lib/index.js"));
const { logger } = await load("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.ELEMENT_AGENT_DEBUG ? "debug" : "info", false);

// An undecryptable event is held this long (its key may still be on its way) before it is
// reported; it is still reported as a message if the key comes later.
const UNDECRYPTABLE_GRACE_MS = 3000;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}
function emitError(message, extra = {}) {
    emit({ type: "error", message, ...extra });
}

const shieldColours = { [cryptoApi.EventShieldColour.NONE]: "none", [cryptoApi.EventShieldColour.GREY]: "grey", [cryptoApi.EventShieldColour.RED]: "red" };
const shieldReason = (r) => (r === null || r === undefined ? "" : cryptoApi.EventShieldReason[r] ?? String(r));

const auth = (type) => ({
    type,
    identifier: { type: "m.id.user", user: userId },
    password,
});

const login = await sdk.createClient({ baseUrl: homeserver }).loginRequest({
    ...auth("m.login.password"),
    initial_device_display_name: "carebridge test (Element crypto)",
});
const client = sdk.createClient({
    baseUrl: homeserver,
    userId: login.user_id,
    deviceId: login.device_id,
    accessToken: login.access_token,
});
// In memory, as a browser tab without IndexedDB: a new device every start.
await client.initRustCrypto({ useIndexedDB: false });
const crypto = client.getCrypto();
if (options.exclude_insecure_devices) {
    // Element's "Exclude insecure devices" (Settings → Security; MSC4153): room keys go only
    // to devices their owner cross-signed, and messages from other devices do not decrypt.
    crypto.setDeviceIsolationMode(new cryptoApi.OnlySignedDevicesIsolationMode());
}

const seen = new Set(); // event IDs reported as a message or event
const pending = new Map(); // event ID -> {event, since, reported}
const joined = new Set();
const invited = new Set();

async function describe(event) {
    const room = event.getRoomId();
    const content = event.getContent();
    const line = {
        type: "message",
        room_id: room,
        event_id: event.getId(),
        sender: event.getSender(),
        body: content.body ?? "",
        msgtype: content.msgtype ?? "",
        encrypted: event.isEncrypted(),
        server_ts: event.getTs(),
        received_ms: Date.now(),
    };
    if (event.isEncrypted()) {
        const info = await crypto.getEncryptionInfoForEvent(event);
        if (info) {
            line.shield = shieldColours[info.shieldColour] ?? String(info.shieldColour);
            line.shield_reason = shieldReason(info.shieldReason);
        }
        line.sender_device = event.getWireContent().device_id ?? "";
    }
    if (content.file || content.url) {
        await media(line, content);
    }
    return line;
}

async function media(line, content) {
    line.mimetype = content.info?.mimetype ?? "";
    const mxc = content.file ? content.file.url : content.url;
    // Authenticated media (MSC3916), as Element fetches it.
    const [server, mediaId] = mxc.slice("mxc://".length).split("/");
    const resp = await fetch(`${homeserver}/_matrix/client/v1/media/download/${server}/${mediaId}`, {
        headers: { Authorization: `Bearer ${client.getAccessToken()}` },
    });
    let data = new Uint8Array(await resp.arrayBuffer());
    if (resp.status !== 200) {
        line.media_error = `HTTP ${resp.status}: ${Buffer.from(data.slice(0, 200)).toString()}`;
        return;
    }
    if (content.file) {
        try {
            data = new Uint8Array(await attachments.decryptAttachment(data.buffer, content.file));
        } catch (e) {
            line.media_error = `decrypt: ${e}`;
            return;
        }
    }
    line.media_sha256 = createHash("sha256").update(data).digest("hex");
    line.media_size = data.length;
    line.media_encrypted = Boolean(content.file);
}

async function report(event) {
    const id = event.getId();
    // A local echo (status set, a "~" ID) is reported when the homeserver echoes it.
    if (!id || seen.has(id) || event.isState() || event.status !== null) return;
    if (event.isBeingDecrypted() || event.shouldAttemptDecryption()) return; // Decrypted follows
    if (event.isDecryptionFailure()) {
        if (!pending.has(id)) pending.set(id, { event, since: Date.now(), reported: false });
        return;
    }
    seen.add(id);
    pending.delete(id);
    const type = event.getType();
    if (type === "m.room.message") {
        emit(await describe(event));
    } else if (type !== "m.room.encrypted") {
        emit({
            type: "event",
            room_id: event.getRoomId(),
            event_id: id,
            sender: event.getSender(),
            event_type: type,
            content: event.getContent(),
            encrypted: event.isEncrypted(),
            received_ms: Date.now(),
        });
    }
}

function guard(name, fn) {
    return (...args) => {
        Promise.resolve()
            .then(() => fn(...args))
            .catch((e) => emitError(`${name}: ${e?.stack ?? e}`));
    };
}

client.on(sdk.RoomEvent.Timeline, guard("timeline", (event, room, toStartOfTimeline) => {
    if (!toStartOfTimeline) return report(event);
}));
client.on(sdk.MatrixEventEvent.Decrypted, guard("decrypted", (event) => report(event)));
client.on(sdk.RoomMemberEvent.Membership, guard("membership", async (event, member) => {
    if (member.userId !== client.getUserId()) return;
    const roomId = member.roomId;
    writeErr(`my membership in ${roomId}: ${member.membership} (event ${event.getId()}, room membership ${client.getRoom(roomId)?.getMyMembership()})`);
    if (member.membership === "invite" && !invited.has(roomId) && !joined.has(roomId)) {
        invited.add(roomId);
        emit({ type: "invited", room_id: roomId, sender: event.getSender() });
        await joinRoom(roomId);
    } else if (member.membership === "join" && !joined.has(roomId)) {
        joined.add(roomId);
        emit({ type: "joined", room_id: roomId });
    }
}));

async function joinRoom(roomId) {
    let last;
    for (let attempt = 0; attempt < 5; attempt++) {
        try {
            await client.joinRoom(roomId);
            // The server confirmed the join: say so now. Dendrite sometimes leaves a
            // just-joined room's own join out of the next /sync (the nio agent meets the
            // same), and waiting for the membership event would then wait forever.
            if (!joined.has(roomId)) {
                joined.add(roomId);
                emit({ type: "joined", room_id: roomId });
            }
            return;
        } catch (e) {
            last = e;
            writeErr(`join ${roomId} failed (attempt ${attempt + 1}): ${e}`);
            await new Promise((r) => setTimeout(r, 500));
        }
    }
    emitError(`failed to join ${roomId}: ${last}`, { room_id: roomId });
}

setInterval(() => {
    const now = Date.now();
    for (const [id, p] of pending) {
        if (!p.reported && now - p.since >= UNDECRYPTABLE_GRACE_MS) {
            p.reported = true;
            const wire = p.event.getWireContent();
            emit({
                type: "undecryptable",
                room_id: p.event.getRoomId(),
                event_id: id,
                sender: p.event.getSender(),
                session_id: wire.session_id ?? "",
                reason: p.event.decryptionFailureReason ?? "",
                error: p.event.getContent().body ?? "",
            });
        }
    }
}, 250).unref();

async function waitRoom(roomId) {
    for (let i = 0; i < 200; i++) {
        const room = client.getRoom(roomId);
        // getMyMembership can stay "invite" for a while after the join is in the room's
        // state (seen on Synapse): the member event is what Element's composer goes by.
        if (room && (room.getMyMembership() === "join" || room.getMember(client.getUserId())?.membership === "join")) return room;
        // Synapse, v12 rooms: the SDK sometimes keeps the invite as the room's state while our
        // join is in its live timeline (seen 2 runs in 6). The server has us joined; apply
        // the join to the room's state, as the next state sync would.
        const join = room?.getLiveTimeline().getEvents().findLast((e) => e.getType() === "m.room.member" &&
            e.getStateKey() === client.getUserId() && e.getContent().membership === "join");
        if (join && i >= 10) {
            writeErr(`applying our join ${join.getId()} to ${roomId}'s state (the SDK kept the invite)`);
            room.currentState.setStateEvents([join]);
            room.updateMyMembership("join");
            return room;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    const room = client.getRoom(roomId);
    const mine = room?.getLiveTimeline().getEvents().filter((e) => e.getType() === "m.room.member" && e.getStateKey() === client.getUserId())
        .map((e) => `${e.getId()}:${e.getContent().membership}`);
    throw new Error(`room ${roomId} never appeared in /sync as joined (room known: ${Boolean(room)}, membership: ${room?.getMyMembership()}, member: ${room?.getMember(client.getUserId())?.membership}, my member events in the timeline: ${mine})`);
}

// ---- commands ---------------------------------------------------------------------

const commands = {
    async send(req) {
        await waitRoom(req.room_id);
        const content = { msgtype: req.msgtype || "m.text", body: req.body };
        if (req.formatted_body) {
            content.format = "org.matrix.custom.html";
            content.formatted_body = req.formatted_body;
        }
        const started = Date.now();
        const resp = await client.sendMessage(req.room_id, content);
        return { type: "sent", event_id: resp.event_id, sent_ms: started, acked_ms: Date.now(), room_id: req.room_id };
    },
    async send_file(req) {
        await waitRoom(req.room_id);
        const data = await readFile(req.path);
        const mimetype = req.mimetype || "application/octet-stream";
        const encrypted = await crypto.isEncryptionEnabledInRoom(req.room_id);
        const content = {
            msgtype: mimetype.startsWith("image/") ? "m.image" : "m.file",
            body: req.filename,
            info: { mimetype, size: data.length },
        };
        if (encrypted) {
            const { data: ciphertext, info } = await attachments.encryptAttachment(
                data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
            );
            const up = await client.uploadContent(new Blob([ciphertext]), {
                type: "application/octet-stream",
                includeFilename: false,
            });
            content.file = { ...info, url: up.content_uri };
        } else {
            const up = await client.uploadContent(new Blob([data]), { type: mimetype, name: req.filename });
            content.url = up.content_uri;
        }
        const started = Date.now();
        const resp = await client.sendMessage(req.room_id, content);
        return { type: "sent", event_id: resp.event_id, sent_ms: started, acked_ms: Date.now(), room_id: req.room_id };
    },
    // The devices of a user as this client sees them, with what Element's device list
    // shows: signed by their owner (cross-signed), verified.
    async devices(req) {
        const map = await crypto.getUserDeviceInfo([req.user_id], true);
        const devices = [];
        for (const [deviceId, device] of map.get(req.user_id) ?? []) {
            const status = await crypto.getDeviceVerificationStatus(req.user_id, deviceId);
            devices.push({
                device_id: deviceId,
                signed_by_owner: Boolean(status?.signedByOwner),
                cross_signing_verified: Boolean(status?.crossSigningVerified),
                verified: Boolean(status?.isVerified()),
                display_name: device.displayName ?? "",
            });
        }
        const identity = await crypto.getUserVerificationStatus(req.user_id);
        return { type: "done", devices, user_cross_signed: identity.isCrossSigningVerified() || Boolean(await crypto.userHasCrossSigningKeys(req.user_id, true)) };
    },
    async export_secrets() {
        return { type: "done", secrets: JSON.stringify(await crypto.exportSecretsBundle()) };
    },
};

async function setUpCrossSigning() {
    if (options.secrets) {
        // A second device of the same person, brought in as Element's QR-code login does:
        // the first device hands over the cross-signing keys and this one signs itself.
        await crypto.importSecretsBundle(JSON.parse(options.secrets));
        await crypto.crossSignDevice(client.getDeviceId());
        return;
    }
    await crypto.bootstrapCrossSigning({
        setupNewCrossSigning: true,
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest(auth("m.login.password"));
        },
    });
}

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
    if (req.cmd === "quit") {
        shutdown();
        return;
    }
    const run = commands[req.cmd];
    if (!run) {
        emitError(`unknown command ${JSON.stringify(req.cmd)}`, { req_id: req.req_id ?? "" });
        return;
    }
    run(req).then(
        (out) => emit({ ...out, req_id: req.req_id ?? "" }),
        (e) => emitError(`${req.cmd}: ${e?.stack ?? e}`, { req_id: req.req_id ?? "" }),
    );
});
rl.on("close", shutdown);

function shutdown() {
    client.stopClient();
    process.exit(0);
}

const prepared = new Promise((resolve, reject) => {
    client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
        if (state === "PREPARED" || state === "SYNCING") resolve();
        else if (state === "ERROR") writeErr(`sync error: ${data?.error}`);
    });
});
await client.startClient({ initialSyncLimit: 20 });
await prepared;
// Ready once others can find this device: the Rust crypto uploads its keys from the sync loop.
for (let i = 0; ; i++) {
    const keys = await client.downloadKeysForUsers([client.getUserId()]);
    if (keys.device_keys?.[client.getUserId()]?.[client.getDeviceId()]) break;
    if (i === 100) throw new Error("the device keys were never uploaded");
    await new Promise((r) => setTimeout(r, 100));
}
if (options.cross_sign) {
    await setUpCrossSigning();
    // Ready once this device sees itself cross-signed (its own device list is downloaded
    // again when the homeserver reports the new signature).
    for (let i = 0; !(await crypto.getDeviceVerificationStatus(client.getUserId(), client.getDeviceId()))?.signedByOwner; i++) {
        if (i === 100) throw new Error("this device never showed as cross-signed");
        await new Promise((r) => setTimeout(r, 100));
    }
}
emit({ type: "ready", user_id: client.getUserId(), device_id: client.getDeviceId() });
