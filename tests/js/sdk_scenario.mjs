// The part of the users/sessions/blobs scenario that both SDK versions run with the same calls.
//
// signedInSteps: log in, read and change the user, upload, download, read users through getV2
// (and see the v1 users.get refused, as on a new application), reset the password.
// signOutSteps: log out, see writes refused without a user, sign in again with a new session,
// delete a blob and the user, and see the user's token die.

import { expect, expectRefusal, step } from "./sdk_steps.mjs";

const NEED_USER = (info) => info?.errors?.base?.[0] === "Forbidden. Need user.";

// An application session, then a sign-up whose website and full_name the server normalises.
// Returns the new user's id. tagList is an array (SDK 6) or a comma string (SDK 3): both work.
export async function signUpSteps(cc, { login, email, password, tag, tagList }) {
  await step("createSession (application): integer nonce and ts", async () => {
    const session = await cc.createSession();
    expect(session.token && session.user_id === null, `unexpected session ${JSON.stringify(session)}`);
    expect(Number.isInteger(session.nonce) && Number.isInteger(session.ts), JSON.stringify(session));
    return { token: session.token.slice(0, 8) };
  });

  const signedUp = await step("users.signup (normalises website and full_name)", async () => {
    const { user } = await cc.users.signup({
      login,
      password,
      email,
      full_name: ` ${tag} `,
      website: "example.com",
      tag_list: tagList,
      custom_data: JSON.stringify({ source: "sdk_check" }),
    });
    expect(user.id && user.login === login && user.user_tags === "sdk,node", JSON.stringify(user));
    expect(user.full_name === tag && user.website === "http://example.com", JSON.stringify(user));
    return { id: user.id };
  });

  await step("users.signup duplicate login is a 422 with field errors", async () =>
    expectRefusal(() => cc.users.signup({ login, password }), 422, (info) => info?.errors?.login?.length === 1),
  );
  return signedUp?.id;
}

// ctx: { login, email, password, newPassword, userId, control, tag }
export async function signedInSteps(cc, ctx) {
  const { login, email, password, newPassword, userId, control, tag } = ctx;

  await step("login", async () => {
    const user = await cc.login({ login, password });
    expect(user.id === userId, `logged in as ${user.id}, expected ${userId}`);
    return { id: user.id };
  });

  await step("getSession", async () => {
    const session = await cc.getSession();
    expect(session.user_id === userId && session.user?.login === login, JSON.stringify(session));
    return { user_id: session.user_id };
  });

  await step("users.update", async () => {
    const { user } = await cc.users.update({ full_name: `${tag} Updated`, website: "https://example.com" });
    expect(user.full_name === `${tag} Updated` && user.website === "https://example.com", JSON.stringify(user));
    return { full_name: user.full_name };
  });

  await step("users.update password with old_password", async () => {
    const { user } = await cc.users.update({ password: newPassword, old_password: password });
    return { id: user.id };
  });

  await step("users.update password without old_password is refused", async () =>
    expectRefusal(() => cc.users.update({ password: "third-password-3" }), 422),
  );

  const content = Buffer.from(`hello from ${tag}\n`);
  const uploaded = await step("storage.createAndUpload (private)", async () => {
    const blob = await cc.storage.createAndUpload({
      name: "hello.txt",
      file: content,
      type: "text/plain",
      size: content.length,
      public: false,
    });
    expect(blob?.uid && blob.size === content.length, `blob ${JSON.stringify(blob)}`);
    return { id: blob.id, uid: blob.uid };
  });

  if (uploaded) {
    // SDK 3 resolves createAndUpload even when a step failed: getInfo proves upload + complete.
    await step("storage.getInfo: the upload completed with its size", async () => {
      const { blob } = await cc.storage.getInfo(uploaded.id);
      expect(blob.blob_status === "complete" && blob.size === content.length, JSON.stringify(blob));
      return { blob_status: blob.blob_status };
    });
    await step("storage.privateUrl downloads the file", async () => {
      const response = await fetch(cc.storage.privateUrl(uploaded.uid));
      const text = await response.text();
      expect(response.status === 200 && text === content.toString(), `${response.status} ${text}`);
      return { status: response.status };
    });
    await step("storage.getFileObject download_url", async () => {
      const { blob } = await cc.storage.getFileObject(uploaded.uid, { download_url: 1 });
      const response = await fetch(blob.blob_object_access?.download_url);
      expect(response.status === 200 && (await response.text()) === content.toString(), `status ${response.status}`);
      return { url_ok: true };
    });
    await step("users.update avatar", async () => {
      const { user } = await cc.users.update({ avatar: uploaded.uid, custom_data: JSON.stringify({ avatar_uid: uploaded.uid }) });
      expect(user.avatar === uploaded.uid, `avatar ${user.avatar}`);
      return { avatar: user.avatar };
    });
  }

  // A new application has the v1 look-ups (users.get) switched off: only getV2 reads users.
  await step("users.get (v1) is refused on a new application", async () =>
    expectRefusal(() => cc.users.get({ login }), 403, (info) => info?.errors?.base?.[0]?.startsWith("Users retrieving forbidden")),
  );

  await step("users.getV2({login})", async () => {
    const page = await cc.users.getV2({ login });
    expect(page.items.length === 1 && page.items[0].id === userId, JSON.stringify(page));
    return { id: page.items[0].id };
  });

  await step("users.getV2({id: {in}, updated_at: {gt: Date}})", async () => {
    // The SDKs write a Date with String(date): "Wed Nov 06 2019 09:21:41 GMT+0000 (...)".
    const hourAgo = new Date(Date.now() - 3600 * 1000);
    const page = await cc.users.getV2({ id: { in: [userId] }, updated_at: { gt: hourAgo } });
    expect(page.total_entries === 1 && page.items[0].id === userId, JSON.stringify(page));
    const none = await cc.users.getV2({ id: userId, created_at: { lt: hourAgo } });
    expect(none.total_entries === 0, JSON.stringify(none));
    return { total_entries: page.total_entries };
  });

  await step("users.resetPassword", async () => {
    await cc.users.resetPassword(email);
    const state = await control("state");
    expect(state.outbox.some((mail) => mail.to === email), JSON.stringify(state.outbox));
    return { outbox: state.outbox.length };
  });

  return uploaded;
}

export async function signOutSteps(cc, ctx, blobToDelete) {
  const { login, newPassword, userId, control } = ctx;

  await step("logout keeps an application session", async () => {
    await cc.logout();
    const session = await cc.getSession();
    expect(session.user_id === null, `session ${JSON.stringify(session)}`);
    return null;
  });

  // After logout the SDK knows no current user and sends "PUT /users.json" (no id).
  await step("users.update after logout is 403 'Forbidden. Need user.'", async () =>
    expectRefusal(() => cc.users.update({ full_name: "nope" }), 403, NEED_USER),
  );

  await step("users.delete after logout is 403 'Forbidden. Need user.'", async () =>
    expectRefusal(() => cc.users.delete(), 403, NEED_USER),
  );

  await step("destroySession", async () => {
    await cc.destroySession();
    return null;
  });

  await step("createSession with user credentials", async () => {
    const session = await cc.createSession({ login, password: newPassword });
    expect(session.user_id === userId && session.user?.login === login, JSON.stringify(session));
    return { user_id: session.user_id };
  });

  if (blobToDelete) {
    await step("storage.delete", async () => {
      await cc.storage.delete(blobToDelete.id);
      const state = await control("state");
      expect(!state.blobs.some((blob) => blob.id === blobToDelete.id), "blob still present");
      return { id: blobToDelete.id };
    });
  }

  await step("users.delete", async () => {
    await cc.users.delete();
    const state = await control("state");
    expect(!state.users.some((u) => u.id === userId), "user still present");
    return null;
  });

  await step("a deleted user's token answers 401 'Required session does not exist'", async () =>
    expectRefusal(() => cc.getSession(), 401, (info) => info?.errors?.base?.[0] === "Required session does not exist"),
  );
}
