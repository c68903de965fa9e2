// Drives the official ConnectyCube JS SDK (connectycube@6.1.2) against the emulator.
//
// Usage: node sdk_check.mjs <api_url> <app_id> <auth_key>
// Prints one JSON line per step ({"step", "ok", "detail"}) and exits non-zero if any step
// failed, so tests/test_emulator_js_sdk.py can show exactly which SDK call the emulator broke.

import ConnectyCube from "connectycube";

const [apiUrl, appIdText, authKey] = process.argv.slice(2);
if (!apiUrl || !appIdText || !authKey) {
  console.error("usage: node sdk_check.mjs <api_url> <app_id> <auth_key>");
  process.exit(2);
}
const appId = Number(appIdText);
const suffix = Math.random().toString(16).slice(2, 8);
const login = `sdk_user_${suffix}`;
const email = `sdk_${suffix}@example.com`;
const password = "first-password-1";
const newPassword = "second-password-2";
let failures = 0;

function report(step, ok, detail) {
  if (!ok) failures += 1;
  console.log(JSON.stringify({ step, ok, detail }));
}

async function step(name, fn) {
  try {
    const detail = await fn();
    report(name, true, detail ?? null);
    return detail;
  } catch (error) {
    report(name, false, error instanceof Error ? `${error.message}` : error);
    return undefined;
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function control(path) {
  const response = await fetch(`${apiUrl}/_emulator/${path}`);
  return response.json();
}

const config = { endpoints: { api_url: apiUrl }, debug: { mode: 0 } };
const cc = new ConnectyCube.ConnectyCube();
cc.init({ appId, authKey }, config);

await step("createSession (application)", async () => {
  const session = await cc.createSession();
  expect(session.token && session.user_id === null, `unexpected session ${JSON.stringify(session)}`);
  return { token: session.token.slice(0, 8) };
});

const signedUp = await step("users.signup", async () => {
  const { user } = await cc.users.signup({
    login,
    password,
    email,
    full_name: "Sdk Checker",
    tag_list: ["sdk", "node"],
    custom_data: JSON.stringify({ source: "sdk_check" }),
  });
  expect(user.id && user.login === login, `bad user ${JSON.stringify(user)}`);
  expect(user.user_tags === "sdk,node", `bad tags ${user.user_tags}`);
  return { id: user.id };
});
const userId = signedUp?.id;

await step("users.signup without a session (CB-AuthKey)", async () => {
  const anonymous = new ConnectyCube.ConnectyCube();
  anonymous.init({ appId, authKey }, config);
  const { user } = await anonymous.users.signup({ login: `${login}_2`, password });
  expect(user.login === `${login}_2`, `bad user ${JSON.stringify(user)}`);
  return { id: user.id };
});

await step("users.signup duplicate login is a 422 with field errors", async () => {
  try {
    await cc.users.signup({ login, password });
  } catch (error) {
    expect(error.code === 422, `status ${error.code}`);
    expect(error.info?.errors?.login?.length === 1, `body ${JSON.stringify(error.info)}`);
    return error.info;
  }
  throw new Error("signup of a taken login succeeded");
});

await step("login", async () => {
  const user = await cc.login({ login, password });
  expect(user.id === userId, `logged in as ${user.id}, expected ${userId}`);
  return { id: user.id };
});

await step("getSession", async () => {
  const session = await cc.getSession();
  expect(session.user_id === userId, `session user ${session.user_id}`);
  return { user_id: session.user_id };
});

await step("users.update", async () => {
  const { user } = await cc.users.update({ full_name: "Sdk Checker Updated", website: "https://example.com" });
  expect(user.full_name === "Sdk Checker Updated", `full_name ${user.full_name}`);
  return { full_name: user.full_name };
});

await step("users.update password with old_password", async () => {
  const { user } = await cc.users.update({ password: newPassword, old_password: password });
  return { id: user.id };
});

await step("users.update password without old_password is refused", async () => {
  try {
    await cc.users.update({ password: "third-password-3" });
  } catch (error) {
    expect(error.code === 422, `status ${error.code}`);
    return error.info;
  }
  throw new Error("password change without old_password succeeded");
});

const content = Buffer.from(`hello from the JS SDK ${suffix}\n`);
const uploaded = await step("storage.createAndUpload (private)", async () => {
  const blob = await cc.storage.createAndUpload({
    name: "hello.txt",
    file: content,
    type: "text/plain",
    size: content.length,
    public: false,
  });
  expect(blob.uid && blob.size === content.length, `blob ${JSON.stringify(blob)}`);
  return { id: blob.id, uid: blob.uid };
});

if (uploaded) {
  await step("storage.privateUrl downloads the file", async () => {
    const response = await fetch(cc.storage.privateUrl(uploaded.uid));
    const text = await response.text();
    expect(response.status === 200 && text === content.toString(), `${response.status} ${text}`);
    return { status: response.status };
  });
  await step("storage.getInfo", async () => {
    const { blob } = await cc.storage.getInfo(uploaded.id);
    expect(blob.blob_status === "complete" && blob.size === content.length, JSON.stringify(blob));
    return { blob_status: blob.blob_status };
  });
  await step("storage.getFileObject download_url", async () => {
    const { blob } = await cc.storage.getFileObject(uploaded.uid, { download_url: 1 });
    const url = blob.blob_object_access?.download_url;
    const response = await fetch(url);
    expect(response.status === 200, `status ${response.status} for ${url}`);
    return { url_ok: true };
  });
  await step("users.update avatar", async () => {
    const { user } = await cc.users.update({ avatar: uploaded.uid, custom_data: JSON.stringify({ avatar_uid: uploaded.uid }) });
    expect(user.avatar === uploaded.uid, `avatar ${user.avatar}`);
    return { avatar: user.avatar };
  });
}

const publicBlob = await step("storage.createAndUpload (public, default)", async () => {
  const blob = await cc.storage.createAndUpload({ name: "pub.txt", file: content, type: "text/plain", size: content.length });
  const response = await fetch(cc.storage.publicUrl(blob.uid));
  expect(response.status === 200 && (await response.text()) === content.toString(), `status ${response.status}`);
  return { uid: blob.uid };
});

// A new application has the v1 look-ups (users.get) switched off: only getV2 reads users.
await step("users.get (v1) is refused on a new application", async () => {
  try {
    await cc.users.get(userId);
  } catch (error) {
    expect(error.code === 403, `status ${error.code}`);
    expect(error.info?.errors?.base?.[0]?.startsWith("Users retrieving forbidden"), JSON.stringify(error.info));
    return error.info;
  }
  throw new Error("users.get (v1) answered on a default application");
});

await step("users.getV2({login})", async () => {
  const page = await cc.users.getV2({ login });
  expect(page.items.length === 1 && page.items[0].id === userId, JSON.stringify(page));
  return { id: page.items[0].id };
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

await step("users.getV2({user_tags})", async () => {
  const page = await cc.users.getV2({ user_tags: { in: ["sdk"] } });
  expect(page.items.some((user) => user.id === userId), JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.getV2({id: {in}, sort_desc, limit})", async () => {
  const page = await cc.users.getV2({ id: { in: [userId] }, sort_desc: "created_at", limit: 5 });
  expect(page.total_entries === 1 && page.items[0].id === userId, JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.getV2({login: {in: [...]}})", async () => {
  const page = await cc.users.getV2({ login: { in: [login, `${login}_2`] }, limit: 10 });
  expect(page.total_entries === 2 && page.items.length === 2, JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.getV2({id})", async () => {
  const page = await cc.users.getV2({ id: userId });
  expect(page.items[0]?.id === userId, JSON.stringify(page));
  return { total_entries: page.total_entries };
});

await step("users.resetPassword", async () => {
  await cc.users.resetPassword(email);
  const state = await control("state");
  expect(state.outbox.some((mail) => mail.to === email), JSON.stringify(state.outbox));
  return { outbox: state.outbox.length };
});

await step("logout keeps an application session", async () => {
  await cc.logout();
  const session = await cc.getSession();
  expect(session.user_id === null, `session ${JSON.stringify(session)}`);
  return null;
});

await step("users.update with an application session is 403", async () => {
  // After logout the SDK forgets the user id and would send "PUT /users.json" (a 404 on any
  // server); put the id back so the request is "PUT /users/{id}.json" with an app token.
  cc.service.setCurrentUserId(userId);
  try {
    await cc.users.update({ full_name: "nope" });
  } catch (error) {
    expect(error.code === 403, `status ${error.code} ${JSON.stringify(error.info)}`);
    expect(error.info?.errors?.base?.[0] === "Forbidden. Need user.", JSON.stringify(error.info));
    return error.info;
  } finally {
    cc.service.setCurrentUserId(null);
  }
  throw new Error("update with an application session succeeded");
});

await step("destroySession", async () => {
  await cc.destroySession();
  return null;
});

await step("createSession with user credentials", async () => {
  const session = await cc.createSession({ login, password: newPassword });
  expect(session.user_id === userId && session.user?.login === login, JSON.stringify(session));
  return { user_id: session.user_id };
});

if (publicBlob) {
  await step("storage.delete", async () => {
    const { uid } = publicBlob;
    const state = await control("state");
    const blob = state.blobs.find((b) => b.uid === uid);
    await cc.storage.delete(blob.id);
    return { id: blob.id };
  });
}

await step("users.delete", async () => {
  await cc.users.delete();
  const state = await control("state");
  expect(!state.users.some((u) => u.id === userId), "user still present");
  return null;
});

await step("an expired/unknown token answers 401 'Required session does not exist'", async () => {
  try {
    await cc.getSession();
  } catch (error) {
    expect(error.code === 401, `status ${error.code}`);
    expect(error.info?.errors?.base?.[0] === "Required session does not exist", JSON.stringify(error.info));
    return error.info;
  }
  throw new Error("a deleted user's session still works");
});

console.log(JSON.stringify({ summary: true, failures }));
process.exit(failures ? 1 : 0);
