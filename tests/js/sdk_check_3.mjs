// Drives the official ConnectyCube JS SDK 3.35.3 (unchanged; installed as "connectycube-3")
// against the emulator at a new application's defaults: users, sessions and blobs.
//
// Usage: node sdk_check_3.mjs <api_url> <app_id> <auth_key> <auth_secret> <tls_key> <tls_cert>
// SDK 3 signs every POST /session with the auth secret (HMAC-SHA1 over nonce and timestamp) and
// builds every URL as "https://" + endpoints.api, so it reaches the emulator through an https
// front (sdk_steps.mjs); NODE_EXTRA_CA_CERTS must name tls_cert. The v1 look-ups (users.get)
// are off on a new application: users are read with users.getV2, and one step checks that
// users.get is refused.

import ConnectyCube from "connectycube-3";
import { signOutSteps, signUpSteps, signedInSteps } from "./sdk_scenario.mjs";
import { controlApi, expect, expectRefusal, finish, startTlsFront, step } from "./sdk_steps.mjs";

const [apiUrl, appIdText, authKey, authSecret, tlsKey, tlsCert] = process.argv.slice(2);
if (!apiUrl || !appIdText || !authKey || !authSecret || !tlsKey || !tlsCert) {
  console.error("usage: node sdk_check_3.mjs <api_url> <app_id> <auth_key> <auth_secret> <tls_key> <tls_cert>");
  process.exit(2);
}
const appId = Number(appIdText);
const control = controlApi(apiUrl);
const front = await startTlsFront(apiUrl, tlsKey, tlsCert);
const config = { endpoints: { api: front.host }, debug: { mode: 0 } };
const suffix = Math.random().toString(16).slice(2, 8);
const login = `sdk3_user_${suffix}`;
const email = `sdk3_${suffix}@example.com`;
const password = "first-password-1";
const newPassword = "second-password-2";

// SDK 3 keeps its credentials in one module-wide config: this check runs first, then the real
// credentials are set for the rest.
await step("createSession signed with a wrong auth secret is 422 'Unexpected signature'", async () => {
  const wrong = new ConnectyCube.ConnectyCube();
  wrong.init({ appId, authKey, authSecret: `${authSecret}-wrong` }, config);
  return expectRefusal(() => wrong.createSession(), 422, (info) => info?.errors?.[0] === "Unexpected signature");
});

const cc = new ConnectyCube.ConnectyCube();
cc.init({ appId, authKey, authSecret }, config);

const userId = await signUpSteps(cc, { login, email, password, tag: "Sdk Three", tagList: "sdk,node" });

const ctx = { login, email, password, newPassword, userId, control, tag: "Sdk Three" };
const uploaded = await signedInSteps(cc, ctx);

await step("the emulator's URLs point back at the https front", async () => {
  const { blob } = await cc.storage.getFileObject(uploaded?.uid, { download_url: 1 });
  const url = blob.blob_object_access?.download_url ?? "";
  expect(url.startsWith(`https://${front.host}/blobs/`), url);
  return { download_url: url.split("?")[0] };
});

await signOutSteps(cc, ctx, uploaded);

front.close();
finish();
