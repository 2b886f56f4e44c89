// Run by scripts/compose-test.sh inside the client container (`node --input-type=module < this`):
// sends one well-formed, correctly sealed getattr request without its path argument, as the client's
// identity, so that a server refuses it and counts natsfs_server_denials_total{reason="bad_request"}.
// A real client never sends one; the dashboard's denial panel needs one to have a series.
import { connectBus } from "/app/dist/cli/connect.js";
import { encodeRequest, requestSubject } from "/app/dist/protocol/index.js";

const { nc } = await connectBus({ nats: "tls://nats:4222", pki: "/etc/natsfs/pki/client", identity: "client" }, "compose-test denial");
const subject = requestSubject("data", "client", "getattr");
const request = { id: `compose-test:${Date.now()}`, deadline: Date.now() + 5000, args: {} };
const reply = await nc.request(subject, encodeRequest(request, subject), { timeout: 5000 });
console.log(`denial probe: ${reply.data.length}-byte reply`);
await nc.close();
