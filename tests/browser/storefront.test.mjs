// Drives Debian's chromium (headless, through playwright-core) through the
// storefront as a buyer would: browse the catalog page by page, sign up,
// redeem a code, search, play a preview, register a device from its public
// key file, buy, download the .steer, download it again from the order
// history, sign out. Started by tests/integration/test_storefront_browser.py,
// which runs the real servers and checks the downloaded files; every input
// comes from the environment (SF_*), the outcome goes to SF_RESULT as JSON.
// Exit 0 only when every step passed.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === "") {
    if (fallback !== undefined) return fallback;
    throw new Error(`storefront.test.mjs: ${name} is not set`);
  }
  return v;
}

// node_modules lives in the build tree (the source tree may be read-only),
// and ES module imports do not look at NODE_PATH: resolve from there.
const requireFrom = createRequire(path.join(env("SF_NODE_MODULES"), "..", "resolve.cjs"));
const { chromium } = requireFrom("playwright-core");

const cfg = {
  storeUrl: env("SF_STORE_URL"),
  chromium: env("SF_CHROMIUM", "/usr/bin/chromium"),
  spki: env("SF_SPKI"),
  profile: env("SF_PROFILE_DIR"),
  downloads: env("SF_DOWNLOAD_DIR"),
  email: env("SF_EMAIL"),
  password: env("SF_PASSWORD"),
  code: env("SF_CODE"),
  codePoints: Number(env("SF_CODE_POINTS")),
  search: env("SF_SEARCH"),
  title: env("SF_TITLE"),
  artist: env("SF_ARTIST"),
  album: env("SF_ALBUM"),
  titles: JSON.parse(env("SF_ALL_TITLES")),
  offerId: env("SF_OFFER_ID"),
  price: Number(env("SF_PRICE")),
  devicePublic: env("SF_DEVICE_PUBLIC"),
  devicePrivate: env("SF_DEVICE_PRIVATE"),
  deviceJkt: env("SF_DEVICE_JKT"),
  result: env("SF_RESULT"),
  timeout: Number(env("SF_STEP_TIMEOUT_MS", "30000")),
};

const result = { steps: [] };
let current = "start";

function step(name) {
  current = name;
  result.steps.push(name);
  console.log(`storefront: ${name}`);
}

async function text(page, selector) {
  return (await page.locator(selector).textContent()) ?? "";
}

// Waits until the element's text matches the regular expression (source).
async function waitText(page, selector, pattern, what) {
  await page.waitForFunction(
    ([sel, src]) => {
      const node = document.querySelector(sel);
      return node !== null && new RegExp(src).test(node.textContent.trim());
    },
    [selector, pattern],
    { timeout: cfg.timeout },
  ).catch((e) => {
    throw new Error(`waiting for ${what} (${selector} ~ /${pattern}/): ${e.message.split("\n")[0]}`);
  });
}

async function expectNoError(page) {
  const hidden = await page.locator("#error").isHidden();
  if (!hidden) throw new Error(`the page shows an error: ${await text(page, "#error")}`);
}

async function expectError(page, pattern, what) {
  await page.locator("#error").waitFor({ state: "visible", timeout: cfg.timeout });
  const shown = (await text(page, "#error")).trim();
  assert.match(shown, pattern, `${what}: error message`);
  return shown;
}

async function download(page, click, name) {
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: cfg.timeout }), click()]);
  const suggested = dl.suggestedFilename();
  const target = path.join(cfg.downloads, name);
  await dl.saveAs(target);
  const failure = await dl.failure();
  assert.equal(failure, null, `download ${name} failed: ${failure}`);
  return { suggested, path: target };
}

// A P-256 public JWK as another device would have it (made here, in Node).
async function spareDevice() {
  const { webcrypto, createHash } = await import("node:crypto");
  const pair = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true,
    ["sign", "verify"]);
  const full = await webcrypto.subtle.exportKey("jwk", pair.publicKey);
  const jwk = { kty: full.kty, crv: full.crv, x: full.x, y: full.y };
  // RFC 7638: SHA-256 of the required members in lexicographic order.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  const jkt = createHash("sha256").update(canonical).digest("base64url");
  return { jwk, jkt };
}

async function run(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(cfg.timeout);
  const pageErrors = [];
  const consoleErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  // Records CSP violations (the test's httpd serves the store with
  // script-src 'self' and style-src 'self': inline code would be blocked).
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  step("open the store, one work per page");
  const url = new URL(cfg.storeUrl);
  url.searchParams.set("per_page", "1");
  const response = await page.goto(url.toString());
  assert.equal(response.status(), 200, "GET the storefront page");
  assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self'/,
    "the test server must send its CSP (else the CSP check proves nothing)");
  await page.waitForSelector("body[data-ready=true]");
  await expectNoError(page);

  step("every form control has a label");
  const unlabelled = await page.evaluate(() =>
    Array.from(document.querySelectorAll("input, select, textarea"))
      .filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label"))
      .map((c) => c.id || c.name));
  assert.deepEqual(unlabelled, [], "controls without a label");
  const nameless = await page.evaluate(() =>
    Array.from(document.querySelectorAll("button"))
      .filter((b) => !(b.getAttribute("aria-label") || b.textContent.trim()))
      .map((b) => b.id));
  assert.deepEqual(nameless, [], "buttons without an accessible name");

  step("browse the catalog page by page");
  const seen = [];
  await waitText(page, "#page-info", "^Page 1 of \\d+$", "page 1");
  const pages = Number(/of (\d+)/.exec(await text(page, "#page-info"))[1]);
  assert.equal(pages, cfg.titles.length, "one page per work");
  for (let p = 1; p <= pages; p++) {
    await waitText(page, "#page-info", `^Page ${p} of`, `page ${p}`);
    assert.equal(await page.locator("#catalog-list > li.work").count(), 1, `works on page ${p}`);
    seen.push((await text(page, "#catalog-list .work-title")).trim());
    if (p < pages) await page.click("#page-next");
  }
  assert.ok(await page.locator("#page-next").isDisabled(), "no next page after the last");
  assert.deepEqual([...seen].sort(), [...cfg.titles].sort(), "titles over all pages");
  // Buying needs an account.
  assert.ok(await page.locator("#catalog-list button.buy").first().isDisabled(), "Buy before sign-in");

  step("sign up");
  await page.fill("#sign-up-email", cfg.email);
  await page.fill("#sign-up-name", "Browser Buyer");
  await page.fill("#sign-up-password", cfg.password);
  await page.click("#sign-up-form button[type=submit]");
  await page.locator("#account-bar").waitFor({ state: "visible" });
  await expectNoError(page);
  assert.equal((await text(page, "#account-email")).trim(), "Browser Buyer");
  assert.equal((await text(page, "#wallet-balance")).trim(), "0");
  const token = await page.evaluate(() => sessionStorage.getItem("secmedia.token"));
  assert.ok(token && token.length > 10, "token kept in sessionStorage");
  assert.ok(!page.url().includes(token), "token never in the URL");
  assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");

  step("an unknown code is refused in plain words");
  await page.fill("#redeem-code", "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ");
  await page.click("#redeem-form button[type=submit]");
  result.unknownCodeMessage = await expectError(page, /code/i, "unknown code");
  assert.doesNotMatch(result.unknownCodeMessage, /answered \d{3}/, "the problem's detail, not a status");

  step("top up with the code");
  await page.fill("#redeem-code", cfg.code);
  await page.click("#redeem-form button[type=submit]");
  await waitText(page, "#wallet-balance", `^${cfg.codePoints}$`, "balance after redeem");
  await expectNoError(page);
  assert.equal((await text(page, "#account-balance")).trim(), String(cfg.codePoints));

  step("search");
  await page.fill("#search-query", cfg.search);
  await page.click("#search-form button[type=submit]");
  await waitText(page, "#catalog-summary", "^1 found for", "one search hit");
  const item = page.locator("#catalog-list > li.work");
  assert.equal(await item.count(), 1);
  assert.equal((await item.locator(".work-title").textContent()).trim(), cfg.title);
  assert.equal((await item.locator(".work-artist").textContent()).trim(), cfg.artist);
  assert.equal((await item.locator(".work-album").textContent()).trim(), cfg.album);
  const offer = item.locator(`li.offer[data-offer-id="${cfg.offerId}"]`);
  assert.match(await offer.textContent(), new RegExp(`Buy to own.*${cfg.price} points`));
  assert.ok(await item.locator(".offer-license", { hasText: /Rent for 2 days/ }).count() === 1,
    "the rental offer with its duration");

  step("play the preview");
  await item.locator("button.play-preview").click();
  await page.waitForFunction(() => {
    const a = document.getElementById("preview-player");
    return a.error !== null || a.currentTime > 0.25;
  }, null, { timeout: cfg.timeout });
  const audio = await page.evaluate(() => {
    const a = document.getElementById("preview-player");
    return { src: a.currentSrc, time: a.currentTime, error: a.error && a.error.code,
             duration: a.duration, paused: a.paused };
  });
  assert.equal(audio.error, null, `the preview did not play: ${JSON.stringify(audio)}`);
  assert.ok(audio.time > 0.25, "the preview advanced");
  result.preview = audio;
  await page.evaluate(() => document.getElementById("preview-player").pause());
  await expectNoError(page);

  step("a private key file is refused before it leaves the page");
  await page.setInputFiles("#device-file", cfg.devicePrivate);
  await page.waitForFunction(() => document.getElementById("device-jwk").value.includes("\"d\""));
  await page.click("#device-form button[type=submit]");
  await expectError(page, /private key/i, "private key");
  assert.equal(await page.locator("#device-list li.device").count(), 0);

  step("a pasted text that is not a P-256 public key is refused");
  await page.fill("#device-jwk", "ssh-ed25519 AAAA not a jwk");
  await page.click("#device-form button[type=submit]");
  await expectError(page, /not valid JSON/, "not JSON");
  await page.fill("#device-jwk", JSON.stringify({ kty: "RSA", n: "AQAB", e: "AQAB" }));
  await page.click("#device-form button[type=submit]");
  await expectError(page, /not a P-256 public key/, "RSA key");
  assert.equal(await page.locator("#device-list li.device").count(), 0);

  step("register the device from its public key file");
  await page.setInputFiles("#device-file", cfg.devicePublic);
  await page.waitForFunction(() => document.getElementById("device-jwk").value.includes("\"x\""));
  await page.fill("#device-name", "Living room VLC");
  await page.click("#device-form button[type=submit]");
  await page.locator(`#device-list li.device[data-jkt="${cfg.deviceJkt}"]`).waitFor();
  await expectNoError(page);

  step("register a second device by pasting its public key");
  const spare = await spareDevice();
  await page.fill("#device-jwk", JSON.stringify(spare.jwk));
  await page.fill("#device-name", "Spare phone");
  await page.click("#device-form button[type=submit]");
  await page.locator(`#device-list li.device[data-jkt="${spare.jkt}"]`).waitFor();
  await expectNoError(page);
  assert.equal(await page.locator("#purchase-device option").count(), 2);

  step("buy; the answer is lost, and trying again charges once");
  // The first POST /v1/orders reaches the server, but the page never sees
  // the answer (as on a dropped connection); the retry must carry the
  // same Idempotency-Key and get the same order back.
  const orderKeys = [];
  let loseNext = true;
  await page.route(/\/v1\/orders$/, async (route) => {
    const req = route.request();
    if (req.method() !== "POST") return route.continue();
    orderKeys.push(req.headers()["idempotency-key"]);
    if (!loseNext) return route.continue();
    loseNext = false;
    const answer = await route.fetch();
    result.lostAnswerStatus = answer.status();
    return route.abort("connectionreset");
  });
  await offer.locator("button.buy").click();
  await page.locator("#purchase").waitFor({ state: "visible" });
  await page.selectOption("#purchase-device", cfg.deviceJkt);
  await page.click("#purchase-confirm");
  await expectError(page, /could not reach the store/i, "lost answer");
  await page.locator("#purchase-retry").waitFor({ state: "visible" });
  assert.ok(await page.locator("#purchase-confirm").isDisabled(), "no second order while one may exist");
  assert.equal(result.lostAnswerStatus, 201, "the lost answer was a completed order");
  await page.click("#purchase-retry");
  await page.locator("#purchase-done").waitFor({ state: "visible" });
  await expectNoError(page);
  assert.equal(orderKeys.length, 2);
  assert.match(orderKeys[0], /^[A-Za-z0-9._~:-]{1,128}$/);
  assert.equal(orderKeys[1], orderKeys[0], "the retry reuses the Idempotency-Key");
  result.purchaseText = (await text(page, "#purchase-done-text")).trim();
  const orderId = /Order (\S+?)\./.exec(result.purchaseText)?.[1];
  assert.ok(orderId, `order id in "${result.purchaseText}"`);
  result.orderId = orderId;
  await waitText(page, "#wallet-balance", `^${cfg.codePoints - cfg.price}$`,
    "balance after the purchase (charged once)");

  // For people looking at a run: the page right after a purchase.
  await page.screenshot({ path: path.join(cfg.downloads, "after-purchase.png"), fullPage: true });

  step("download the .steer");
  const bought = await download(page, () => page.click("#purchase-download"), "bought.steer");
  result.download = bought;

  step("rent the same work: a new click, a new key, a new order");
  const rental = item.locator("li.offer", { hasText: /Rent for 2 days/ });
  result.rentalPrice = Number(/(\d+) points/.exec(await rental.textContent())[1]);
  await rental.locator("button.buy").click();
  await page.locator("#purchase-form").waitFor({ state: "visible" });
  await page.selectOption("#purchase-device", cfg.deviceJkt);
  await page.click("#purchase-confirm");
  await page.locator("#purchase-done").waitFor({ state: "visible" });
  await expectNoError(page);
  assert.equal(orderKeys.length, 3);
  assert.notEqual(orderKeys[2], orderKeys[0], "a new purchase gets a new Idempotency-Key");
  result.rentalOrderId = /Order (\S+?)\./.exec(await text(page, "#purchase-done-text"))?.[1];
  assert.ok(result.rentalOrderId && result.rentalOrderId !== orderId);
  await waitText(page, "#wallet-balance", `^${cfg.codePoints - cfg.price - result.rentalPrice}$`,
    "balance after the rental");
  await page.unroute(/\/v1\/orders$/);

  step("sign out, sign in again");
  await page.click("#sign-out");
  await page.locator("#auth").waitFor({ state: "visible" });
  assert.ok(await page.locator("#account-bar").isHidden());
  assert.equal(await page.evaluate(() => sessionStorage.getItem("secmedia.token")), null);
  await page.fill("#sign-in-email", cfg.email);
  await page.fill("#sign-in-password", "not the password");
  await page.click("#sign-in-form button[type=submit]");
  result.wrongPasswordMessage = await expectError(page, /\w/, "wrong password");
  await page.fill("#sign-in-password", cfg.password);
  await page.click("#sign-in-form button[type=submit]");
  await waitText(page, "#status", "^Signed in as ", "signed in");
  await expectNoError(page);

  step("order history and download again");
  const row = page.locator(`#order-list li.order[data-order-id="${orderId}"]`);
  await row.waitFor();
  assert.equal((await row.locator(".order-state").textContent()).trim(), "completed");
  assert.equal(await page.locator("#order-list li.order").count(), 2);
  const again = await download(page, () => row.locator("button.download").click(), "history.steer");
  result.redownload = again;
  await expectNoError(page);

  step("remove the spare device");
  await page.locator(`#device-list li.device[data-jkt="${spare.jkt}"] button`).click();
  await page.locator(`#device-list li.device[data-jkt="${spare.jkt}"]`).waitFor({ state: "detached" });
  assert.equal(await page.locator("#device-list li.device").count(), 1);
  await expectNoError(page);

  step("sign out");
  await page.click("#sign-out");
  await page.locator("#auth").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("secmedia.token")), null);

  step("nothing was blocked or thrown");
  const violations = await page.evaluate(() => window.__cspViolations);
  assert.deepEqual(violations, [], "Content-Security-Policy violations");
  assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  // The deliberate unknown code (404), wrong password (401) and lost
  // answer (connection reset) are logged by the browser; nothing else may be.
  const expected = [/status of 404/, /status of 401/, /ERR_CONNECTION_RESET/];
  const unexpected = consoleErrors.filter((m) => !expected.some((re) => re.test(m)));
  assert.deepEqual(unexpected, [], "console errors");
  result.consoleErrors = consoleErrors;
  return page;
}

async function main() {
  fs.mkdirSync(cfg.downloads, { recursive: true });
  const context = await chromium.launchPersistentContext(cfg.profile, {
    executablePath: cfg.chromium,
    headless: true,
    acceptDownloads: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--no-first-run",
      // Trust exactly the run's server key (its SPKI hash), nothing else;
      // Chromium honours this only with a --user-data-dir of our own.
      `--ignore-certificate-errors-spki-list=${cfg.spki}`,
    ],
  });
  let page = null;
  try {
    page = await run(context);
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.failedStep = current;
    result.error = e.stack || String(e);
    const p = page ?? context.pages()[0];
    if (p) {
      await p.screenshot({ path: path.join(cfg.downloads, "failure.png"), fullPage: true }).catch(() => {});
      result.screenshot = path.join(cfg.downloads, "failure.png");
    }
  } finally {
    await context.close();
    fs.writeFileSync(cfg.result, JSON.stringify(result, null, 2));
  }
  if (!result.ok) {
    console.error(`storefront: FAILED at "${result.failedStep}": ${result.error}`);
    process.exitCode = 1;
  }
}

await main();
