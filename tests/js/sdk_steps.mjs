// What both SDK checks share: numbered steps with JSON reports, the emulator's control API, and
// an https front for SDKs that only speak https (connectycube 3.x builds "https://" + host).
//
// Every step prints one JSON line ({"step", "ok", "detail"}); tests/test_emulator_js_sdk.py reads
// them and shows exactly which SDK call the emulator broke.

import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";

let failures = 0;

function report(step, ok, detail) {
  if (!ok) failures += 1;
  console.log(JSON.stringify({ step, ok, detail }));
}

export async function step(name, fn) {
  try {
    const detail = await fn();
    report(name, true, detail ?? null);
    return detail;
  } catch (error) {
    report(name, false, error instanceof Error ? `${error.message}` : error);
    return undefined;
  }
}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// Runs fn, which must fail with this HTTP status; returns the error body for the report.
export async function expectRefusal(fn, status, check = () => true) {
  try {
    await fn();
  } catch (error) {
    expect(error.code === status, `status ${error.code} ${JSON.stringify(error.info)}`);
    expect(check(error.info), `body ${JSON.stringify(error.info)}`);
    return error.info;
  }
  throw new Error(`succeeded, expected ${status}`);
}

export function controlApi(emulatorUrl) {
  return async (path, body) => {
    const response = await fetch(`${emulatorUrl}/_emulator/${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "Content-Type": "application/json", "X-Emulator-Control": "1" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response.json();
  };
}

// An https server on 127.0.0.1 that forwards every request to the emulator, telling it the
// scheme (X-Forwarded-Proto) so the upload and download URLs it answers point back here.
export async function startTlsFront(emulatorUrl, keyFile, certFile) {
  const upstream = new URL(emulatorUrl);
  const server = https.createServer(
    { key: readFileSync(keyFile), cert: readFileSync(certFile) },
    (request, response) => {
      const forward = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path: request.url,
          headers: { ...request.headers, "x-forwarded-proto": "https" },
        },
        (answer) => {
          response.writeHead(answer.statusCode, answer.headers);
          answer.pipe(response);
        },
      );
      forward.on("error", (error) => {
        response.writeHead(502, { "Content-Type": "text/plain" });
        response.end(`tls front: ${error.message}`);
      });
      request.pipe(forward);
    },
  );
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { host: `127.0.0.1:${server.address().port}`, close: () => server.closeAllConnections() || server.close() };
}

export function finish() {
  console.log(JSON.stringify({ summary: true, failures }));
  process.exit(failures ? 1 : 0);
}
