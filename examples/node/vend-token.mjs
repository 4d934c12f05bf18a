// Vend an AIC access token from the token vendor over SigV4-signed HTTPS (Node.js 18+, AWS SDK v3).
//   npm install @smithy/signature-v4 @aws-crypto/sha256-js @aws-sdk/credential-provider-node
// tokenUrl: the stack's TokenApiUrl + "token" (REST API: service "execute-api")
//        or TokenFunctionUrl + "token" (function URL: service "lambda").
import { Sha256 } from "@aws-crypto/sha256-js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4 } from "@smithy/signature-v4";

export async function vendToken(tokenUrl, scopes, { region = process.env.AWS_REGION, service = "execute-api" } = {}) {
  const url = new URL(tokenUrl);
  const body = JSON.stringify({ scopes }); // POST JSON: no query string to canonicalise
  const signer = new SignatureV4({ credentials: defaultProvider(), region, service, sha256: Sha256 });
  const signed = await signer.sign({
    method: "POST",
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    path: url.pathname,
    // url.host keeps a non-default port: the Host header that arrives must be the one signed.
    headers: { host: url.host, "content-type": "application/json" },
    body,
  });
  const { host, ...headers } = signed.headers; // fetch writes Host itself, from the URL
  const response = await fetch(url, { method: "POST", headers, body });
  const answer = await response.json();
  if (!response.ok) {
    throw new Error(`HTTP ${response.status} ${answer.error ?? ""}: ${answer.error_description ?? answer.message}`);
  }
  return answer; // { access_token, token_type, expires_in, expires_at, scope }
}

// node vend-token.mjs URL SCOPE... prints the token's scope and lifetime (never the token itself).
if (import.meta.url === `file://${process.argv[1]}`) {
  const [tokenUrl, ...scopes] = process.argv.slice(2);
  const service = process.env.TOKEN_VENDOR_SERVICE ?? "execute-api";
  vendToken(tokenUrl, scopes, { service }).then(
    (token) => console.log(JSON.stringify({ scope: token.scope, expires_in: token.expires_in })),
    (error) => {
      console.error(error.message);
      process.exit(1);
    },
  );
}
