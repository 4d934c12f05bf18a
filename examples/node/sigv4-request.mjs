// Test helper (tests/e2e/test_sigv4_clients.py): sign one request with @smithy/signature-v4 and send it,
// optionally tampered after signing. Usage: node sigv4-request.mjs METHOD URL SERVICE [BODY] [TAMPER]
// TAMPER: query | body | date, or chunked (sent untampered, the body as a stream: Transfer-Encoding: chunked).
// Prints {"status": N, "body": ...}.
import { Sha256 } from "@aws-crypto/sha256-js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4 } from "@smithy/signature-v4";

const [method, rawUrl, service, body = "", tamper = ""] = process.argv.slice(2);
const url = new URL(rawUrl);
const query = {};
for (const [name, value] of url.searchParams) {
  query[name] = name in query ? [].concat(query[name], value) : value;
}
const signer = new SignatureV4({ credentials: defaultProvider(), region: process.env.AWS_REGION, service, sha256: Sha256 });
const headers = { host: url.host };
if (body) headers["content-type"] = "application/json";
const signed = await signer.sign({
  method, protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: url.pathname, query, headers,
  body: body || undefined,
});
let sendUrl = rawUrl;
let sendBody = body || undefined;
const { host, ...sendHeaders } = signed.headers;
if (tamper === "query") sendUrl = rawUrl.replace("fr:idm:*", "fr:am:*");
if (tamper === "body") sendBody = body.replace("fr:idm:*", "fr:am:*");
if (tamper === "date") sendHeaders["x-amz-date"] = sendHeaders["x-amz-date"].replace(/..Z$/, (s) => (s === "00Z" ? "01Z" : "00Z"));
const options = { method, headers: sendHeaders, body: sendBody };
if (tamper === "chunked") Object.assign(options, { body: new Blob([body]).stream(), duplex: "half" });
const response = await fetch(sendUrl, options);
console.log(JSON.stringify({ status: response.status, body: await response.text() }));
