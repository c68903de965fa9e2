// Drives the official ConnectyCube JS SDK 6.1.2 (unchanged) against the emulator at a new
// application's defaults: users, sessions and blobs.
//
// Usage: node sdk_check.mjs <api_url> <app_id> <auth_key>
// The v1 look-ups (users.get) are off on a new application: users are read with users.getV2,
// and one step checks that users.get is refused. The steps SDK 3 shares are in sdk_scenario.mjs.

import ConnectyCube from "connectycube";
import { signOutSteps, signUpSteps, signedInSteps } from "./sdk_scenario.mjs";
import { controlApi, expect, expectRefusal, finish, step } from "./sdk_steps.mjs";

const [apiUrl, appIdText, authKey] = process.argv.slice(2);
if (!apiUrl || !appIdText || !authKey) {
  console.error("usage: node sdk_check.mjs <api_url> <app_id> <auth_key>");
  process.exit(2);
}
const appId = Number(appIdText);
const control = controlApi(apiUrl);
const suffix = Math.random().toString(16).slice(2, 8);
const login = `sdk_user_${suffix}`;
const email = `sdk_${suffix}@example.com`;
const password = "first-password-1";
const newPassword = "second-password-2";

const config = { endpoints: { api_url: apiUrl }, debug: { mode: 0 } };
const cc = new ConnectyCube.ConnectyCube();
cc.init({ appId, authKey }, config);

await step("a request with no token at all is 401 'Token is required'", async () => {
  const bare = new ConnectyCube.ConnectyCube();
  bare.init({ appId, authKey }, config);
  return expectRefusal(() => bare.getSession(), 401, (info) => info?.errors?.[0] === "Token is required");
});

const userId = await signUpSteps(cc, { login, email, password, tag: "Sdk Checker", tagList: ["sdk", "node"] });

await step("users.signup without a session (CB-AuthKey)", async () => {
  const anonymous = new ConnectyCube.ConnectyCube();
  anonymous.init({ appId, authKey }, config);
  const { user } = await anonymous.users.signup({ login: `${login}_2`, password });
  expect(user.login === `${login}_2`, `bad user ${JSON.stringify(user)}`);
  return { id: user.id };
});

await step("users.signup with a 2-character login is a 422", async () =>
  expectRefusal(() => cc.users.signup({ login: "ab", password }), 422, (info) => Boolean(info?.errors?.login)),
);

const ctx = { login, email, password, newPassword, userId, control, tag: "Sdk Checker" };
await signedInSteps(cc, ctx);

const content = Buffer.from(`a public file ${suffix}\n`);
const publicBlob = await step("storage.createAndUpload (public, the SDK 6 default)", async () => {
  const blob = await cc.storage.createAndUpload({ name: "pub.txt", file: content, type: "text/plain", size: content.length });
  const response = await fetch(cc.storage.publicUrl(blob.uid));
  expect(response.status === 200 && (await response.text()) === content.toString(), `status ${response.status}`);
  return { id: blob.id, uid: blob.uid };
});

await step("users.getV2({email})", async () => {
  const page = await cc.users.getV2({ email });
  expect(page.items[0]?.id === userId, JSON.stringify(page));
  return { id: page.items[0].id };
});

await step("users.getV2({full_name: {start_with}})", async () => {
  const page = await cc.users.getV2({ full_name: { start_with: "Sdk Checker" } });
  expect(page.items.some((user) => user.id === userId) && page.limit === 5, JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.getV2({user_tags: {in}})", async () => {
  const page = await cc.users.getV2({ user_tags: { in: ["sdk"] } });
  expect(page.items.some((user) => user.id === userId), JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.getV2({login: {in: [...]}})", async () => {
  const page = await cc.users.getV2({ login: { in: [login, `${login}_2`] }, limit: 10 });
  expect(page.total_entries === 2 && page.items.length === 2, JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.listOnline is off until 'Enable Online Users API' is ticked", async () =>
  expectRefusal(() => cc.users.listOnline(), 403),
);

await step("users.listOnline and users.getOnlineCount", async () => {
  await control("config", { online_users_api: true });
  try {
    const { users } = await cc.users.listOnline({ limit: 10 });
    expect(users.some((user) => user.id === userId), JSON.stringify(users));
    const { count } = await cc.users.getOnlineCount();
    expect(Number.isInteger(count) && count >= 1, `count ${count}`);
    return { count };
  } finally {
    await control("config", { online_users_api: false });
  }
});

await step("createSession with a guest user", async () => {
  const guest = new ConnectyCube.ConnectyCube();
  guest.init({ appId, authKey }, config);
  const session = await guest.createSession({ guest: "1", full_name: "Guest Sdk" });
  const user = session.user;
  expect(/^guest_login_[0-9A-F]{36}$/.test(user?.login) && user.phone === "" && user.is_guest === true, JSON.stringify(user));
  return { login: user.login };
});

await signOutSteps(cc, ctx, publicBlob);

finish();
