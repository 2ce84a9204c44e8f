// secmedia storefront: talks to mod_retail's REST API (docs/openapi/retail.yaml)
// from the same origin. No framework, no inline script or style (the page
// works under `script-src 'self'; style-src 'self'`), text put into the page
// only through textContent. The bearer token lives in sessionStorage, never
// in a URL.

const TOKEN_KEY = "secmedia.token";
const DEFAULT_PAGE_SIZE = 12;
const ORDERS_PAGE_SIZE = 20;

// The page is served at <base>/store/; the API lives at <base>/v1/.
const API_BASE = new URL("../", document.baseURI);
const pageParams = new URLSearchParams(location.search);
const PAGE_SIZE = clampInt(pageParams.get("per_page"), 1, 100, DEFAULT_PAGE_SIZE);

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  account: null,
  devices: [],
  query: "",
  offset: 0,
  total: 0,
  ordersShown: 0,
  purchase: null, // {offer, item, idempotencyKey, order}
};

function clampInt(text, min, max, fallback) {
  const n = Number.parseInt(text ?? "", 10);
  return Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}

// ---- messages -----------------------------------------------------------------

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = false;
  $("status").textContent = "";
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function showStatus(text) {
  clearError();
  $("status").textContent = text;
}

class ApiError extends Error {
  constructor(message, status, problem) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

// ---- the API ------------------------------------------------------------------

function apiUrl(path, params) {
  const url = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [k, v] of Object.entries(params || {}))
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  return url;
}

async function api(method, path, { body, params, headers, auth = false, raw = false } = {}) {
  const h = new Headers(headers || {});
  if (!h.has("Accept")) h.set("Accept", "application/json, application/problem+json");
  if (body !== undefined) h.set("Content-Type", "application/json");
  if (auth) {
    if (!state.token) throw new ApiError("Please sign in first.", 401, null);
    h.set("Authorization", "Bearer " + state.token);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, params), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError("Could not reach the store. Check your connection and try again.", 0, null);
  }
  if (response.ok) {
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }
  let problem = null;
  try {
    problem = await response.json();
  } catch (e) {
    problem = null;
  }
  if (response.status === 401 && auth) signedOut("Your session has ended. Please sign in again.");
  let text = problem && typeof problem.detail === "string" && problem.detail
    ? problem.detail
    : `The store answered ${response.status} ${response.statusText || ""}`.trim() + ".";
  if (response.status === 503 || response.status === 429) {
    const after = response.headers.get("Retry-After");
    text += after ? ` Please try again in ${after} seconds.` : " Please try again later.";
  }
  throw new ApiError(text, response.status, problem);
}

// Runs an action from a button or form; its errors become the error
// message. A new action clears the message of the one before.
function action(fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    clearError();
    try {
      await fn(event);
    } catch (e) {
      showError(e instanceof ApiError ? e.message : "Something went wrong: " + e.message);
    }
  };
}

// ---- small DOM helpers ------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function licenseText(license) {
  if (!license || license.type !== "rental") return "Buy to own";
  const s = Number(license.duration) || 0;
  if (s % 86400 === 0 && s >= 86400) return `Rent for ${s / 86400} day${s === 86400 ? "" : "s"}`;
  if (s % 3600 === 0 && s >= 3600) return `Rent for ${s / 3600} hour${s === 3600 ? "" : "s"}`;
  return `Rent for ${Math.max(1, Math.round(s / 60))} minutes`;
}

function points(n) {
  return `${Number(n).toLocaleString("en")} point${n === 1 ? "" : "s"}`;
}

function dateText(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleString();
}

function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "sf-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function fileNameFrom(disposition, fallback) {
  const m = /filename="?([A-Za-z0-9._-]+)"?/.exec(disposition || "");
  return m ? m[1] : fallback;
}

// ---- account ----------------------------------------------------------------------

function signedIn() {
  return Boolean(state.token);
}

function renderAccount() {
  const on = signedIn() && state.account;
  $("auth").hidden = Boolean(on);
  $("account-bar").hidden = !on;
  for (const id of ["wallet", "devices", "orders"]) $(id).hidden = !on;
  if (!on) {
    $("purchase").hidden = true;
    return;
  }
  $("account-email").textContent = state.account.display_name || state.account.email;
  $("account-balance").textContent = String(state.account.balance);
  $("wallet-balance").textContent = String(state.account.balance);
}

function signedOut(message) {
  state.token = null;
  state.account = null;
  state.devices = [];
  sessionStorage.removeItem(TOKEN_KEY);
  renderAccount();
  renderCatalogButtons();
  if (message) showError(message);
}

async function loadAccount() {
  state.account = await api("GET", "/v1/account", { auth: true });
  renderAccount();
}

async function afterSignIn() {
  await loadAccount();
  await Promise.all([loadDevices(), loadOrders(true)]);
  renderCatalogButtons();
}

async function signIn(email, password) {
  const session = await api("POST", "/v1/sessions", { body: { email, password } });
  state.token = session.token;
  sessionStorage.setItem(TOKEN_KEY, session.token);
  await afterSignIn();
}

const onSignIn = action(async () => {
  const email = $("sign-in-email").value.trim();
  const password = $("sign-in-password").value;
  if (!email || !password) return showError("Enter your email and password to sign in.");
  await signIn(email, password);
  $("sign-in-password").value = "";
  showStatus(`Signed in as ${email}.`);
});

const onSignUp = action(async () => {
  const email = $("sign-up-email").value.trim();
  const password = $("sign-up-password").value;
  const name = $("sign-up-name").value.trim();
  if (!email) return showError("Enter an email address to sign up.");
  if (password.length < 10) return showError("Choose a password of at least 10 characters.");
  const body = { email, password };
  if (name) body.display_name = name;
  await api("POST", "/v1/accounts", { body });
  await signIn(email, password);
  $("sign-up-password").value = "";
  showStatus(`Welcome! Your account ${email} is ready.`);
});

const onSignOut = action(async () => {
  try {
    await api("DELETE", "/v1/sessions/current", { auth: true });
  } finally {
    signedOut(null);
  }
  showStatus("Signed out.");
});

// ---- wallet -------------------------------------------------------------------------

const onRedeem = action(async () => {
  const code = $("redeem-code").value.trim();
  if (!code) return showError("Enter the code you were given.");
  const entry = await api("POST", "/v1/wallet/redeem", { body: { code }, auth: true });
  $("redeem-code").value = "";
  await loadAccount();
  showStatus(`Code redeemed: ${points(entry.amount)} added. Balance: ${points(entry.balance_after)}.`);
});

// ---- devices ------------------------------------------------------------------------

async function loadDevices() {
  const list = await api("GET", "/v1/devices", { auth: true });
  state.devices = list.devices || [];
  renderDevices();
}

function renderDevices() {
  const ul = $("device-list");
  ul.replaceChildren();
  if (state.devices.length === 0) ul.append(el("li", { text: "No device registered yet." }));
  for (const d of state.devices) {
    const remove = el("button", { type: "button", text: "Remove" });
    remove.setAttribute("aria-label", `Remove device ${d.name || d.jkt}`);
    remove.addEventListener("click", action(async () => {
      await api("DELETE", "/v1/devices/" + encodeURIComponent(d.jkt), { auth: true });
      await loadDevices();
      showStatus(`Device ${d.name || d.jkt} removed.`);
    }));
    ul.append(el("li", { class: "device", "data-jkt": d.jkt },
      el("span", { class: "device-name", text: d.name || "Unnamed device" }), " ",
      el("code", { class: "jkt", text: d.jkt }), " ", remove));
  }
  const select = $("purchase-device");
  const chosen = select.value;
  select.replaceChildren();
  for (const d of state.devices)
    select.append(el("option", { value: d.jkt, text: `${d.name || "Unnamed device"} (${d.jkt.slice(0, 10)}…)` }));
  if (state.devices.some((d) => d.jkt === chosen)) select.value = chosen;
}

// Checks locally what the server would refuse anyway, so a private key is
// never sent anywhere.
function parsePublicJwk(text) {
  let jwk;
  try {
    jwk = JSON.parse(text);
  } catch (e) {
    throw new ApiError("That is not a key file: it is not valid JSON.", 0, null);
  }
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk))
    throw new ApiError("That is not a key file: expected a JSON object (a JWK).", 0, null);
  if ("d" in jwk)
    throw new ApiError("That is a private key. Register only the public key " +
      "(secmedia keygen --public-out FILE) and keep the private key on the device.", 0, null);
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.x !== "string" || typeof jwk.y !== "string")
    throw new ApiError("That key is not a P-256 public key (kty EC, crv P-256).", 0, null);
  return jwk;
}

const onDeviceFile = action(async () => {
  const file = $("device-file").files[0];
  if (!file) return;
  if (file.size > 8192) return showError("That file is too large to be a public key.");
  $("device-jwk").value = (await file.text()).trim();
});

const onRegisterDevice = action(async () => {
  const text = $("device-jwk").value.trim();
  if (!text) return showError("Choose the device's public key file or paste the key.");
  const jwk = parsePublicJwk(text);
  const body = { jwk };
  const name = $("device-name").value.trim();
  if (name) body.name = name;
  const device = await api("POST", "/v1/devices", { body, auth: true });
  $("device-jwk").value = "";
  $("device-file").value = "";
  $("device-name").value = "";
  await loadDevices();
  showStatus(`Device ${device.name || device.jkt} registered.`);
});

// ---- catalog ------------------------------------------------------------------------

async function loadCatalog() {
  const page = await api("GET", "/v1/catalog", {
    params: { q: state.query, limit: PAGE_SIZE, offset: state.offset },
  });
  state.total = page.total;
  renderCatalog(page.items || []);
}

function renderCatalog(items) {
  const ul = $("catalog-list");
  ul.replaceChildren();
  const q = state.query;
  if (items.length === 0) {
    $("catalog-summary").textContent = q ? `Nothing found for "${q}".` : "The catalog is empty.";
  } else {
    const first = state.offset + 1;
    const last = state.offset + items.length;
    $("catalog-summary").textContent =
      (q ? `${state.total} found for "${q}"` : `${state.total} works`) + `, showing ${first}–${last}.`;
  }
  for (const item of items) ul.append(catalogItem(item));
  const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
  const current = Math.floor(state.offset / PAGE_SIZE) + 1;
  $("pager").hidden = pages <= 1;
  $("page-info").textContent = `Page ${current} of ${pages}`;
  $("page-prev").disabled = state.offset === 0;
  $("page-next").disabled = state.offset + PAGE_SIZE >= state.total;
  renderCatalogButtons();
}

function catalogItem(item) {
  const li = el("li", { class: "work", "data-work-id": item.work_id });
  li.append(el("h3", { class: "work-title", text: item.title }));
  const meta = [];
  if (item.artist) meta.push(el("span", { class: "work-artist", text: item.artist }));
  if (item.album) meta.push(el("span", { class: "work-album", text: item.album }));
  if (meta.length) {
    const p = el("p", { class: "work-meta" });
    meta.forEach((m, i) => p.append(...(i ? [" · ", m] : [m])));
    li.append(p);
  }
  if (item.preview_url && /^https?:\/\//.test(item.preview_url)) {
    const play = el("button", { type: "button", class: "play-preview", text: "Play preview" });
    play.setAttribute("aria-label", `Play preview of ${item.title}`);
    play.addEventListener("click", () => playPreview(item));
    li.append(play);
  }
  const offers = el("ul", { class: "offers" });
  for (const offer of item.offers || []) {
    const buy = el("button", { type: "button", class: "buy", text: "Buy" });
    buy.setAttribute("aria-label", `${licenseText(offer.license)}: ${item.title} for ${points(offer.price)}`);
    buy.addEventListener("click", () => startPurchase(item, offer));
    offers.append(el("li", { class: "offer", "data-offer-id": String(offer.offer_id) },
      el("span", { class: "offer-license", text: licenseText(offer.license) }), " — ",
      el("span", { class: "offer-price", text: points(offer.price) }), " ", buy));
  }
  li.append(offers);
  return li;
}

function renderCatalogButtons() {
  for (const b of document.querySelectorAll("#catalog-list button.buy")) {
    b.disabled = !signedIn();
    b.title = signedIn() ? "" : "Sign in to buy";
  }
}

const onSearch = action(async () => {
  state.query = $("search-query").value.trim();
  state.offset = 0;
  await loadCatalog();
});

const onSearchClear = action(async () => {
  $("search-query").value = "";
  state.query = "";
  state.offset = 0;
  await loadCatalog();
});

const onPage = (delta) => action(async () => {
  state.offset = Math.max(0, state.offset + delta * PAGE_SIZE);
  await loadCatalog();
});

// ---- preview --------------------------------------------------------------------------

function playPreview(item) {
  const player = $("preview-player");
  $("preview-title").textContent = `Now previewing: ${item.title}` + (item.artist ? ` by ${item.artist}` : "");
  player.dataset.workId = item.work_id;
  // No crossorigin attribute: media elements play cross-origin media without CORS.
  player.src = item.preview_url;
  player.play().catch((e) => {
    if (e && e.name === "NotAllowedError") showStatus("Press play on the preview player to listen.");
  });
}

function onPreviewError() {
  const player = $("preview-player");
  if (!player.getAttribute("src")) return;
  showError("This preview could not be played. The work may have no preview yet.");
}

// ---- purchase -----------------------------------------------------------------------------

function startPurchase(item, offer) {
  if (!signedIn()) return showError("Please sign in to buy.");
  state.purchase = { item, offer, idempotencyKey: null, body: null, order: null };
  $("purchase").hidden = false;
  $("purchase-form").hidden = false;
  $("purchase-done").hidden = true;
  $("purchase-retry").hidden = true;
  $("purchase-confirm").disabled = false;
  $("purchase-gift").value = "";
  $("purchase-what").textContent =
    `${licenseText(offer.license)}: ${item.title}` + (item.artist ? ` by ${item.artist}` : "") +
    ` for ${points(offer.price)}.`;
  if (state.devices.length === 0)
    showError("Register a device first (see Devices): what you buy is bound to one device.");
  $("purchase-device").focus();
}

function orderBody() {
  const gift = $("purchase-gift").value.trim();
  const jkt = gift || $("purchase-device").value;
  if (!jkt) throw new ApiError("Choose the device to play it on, or register one first.", 0, null);
  return { offer_id: state.purchase.offer.offer_id, device_jkt: jkt };
}

// Sends the order with the purchase's key and body; a retry sends both
// unchanged (the server answers a changed body under the same key with 409).
async function placeOrder() {
  const p = state.purchase;
  const body = p.body;
  $("purchase-confirm").disabled = true;
  $("purchase-retry").hidden = true;
  showStatus("Placing your order…");
  try {
    p.order = await api("POST", "/v1/orders", {
      body, auth: true, headers: { "Idempotency-Key": p.idempotencyKey },
    });
  } catch (e) {
    // A lost answer or a busy server: the order may exist. Only "Try
    // again" (same key, same body: never charged twice) or "Cancel" are
    // offered then, not a second order. Anything else needs a new order.
    if (e instanceof ApiError && (e.status === 0 || e.status >= 500)) {
      $("purchase-retry").hidden = false;
    } else {
      p.idempotencyKey = null;
      p.body = null;
      $("purchase-confirm").disabled = false;
    }
    throw e;
  }
  if (p.order.state !== "completed") {
    const detail = p.order.problem && p.order.problem.detail;
    p.idempotencyKey = null;
    p.body = null;
    $("purchase-confirm").disabled = false;
    throw new ApiError(detail || `The order is ${p.order.state}.`, 0, null);
  }
  $("purchase-form").hidden = true;
  $("purchase-done").hidden = false;
  $("purchase-done-text").textContent =
    `Bought: ${p.order.title || p.item.title}. Order ${p.order.order_id}. ` +
    "Download the .steer file and open it in VLC on that device.";
  showStatus(`Purchase complete. ${points(p.order.price)} paid.`);
  await Promise.all([loadAccount(), loadOrders(true)]);
  $("purchase-download").focus();
}

const onConfirmPurchase = action(async () => {
  // One click, one order: a fresh key for each confirmation.
  state.purchase.body = orderBody();
  state.purchase.idempotencyKey = newIdempotencyKey();
  await placeOrder();
});

const onRetryPurchase = action(async () => {
  const p = state.purchase;
  if (!p.idempotencyKey || !p.body) {
    p.body = orderBody();
    p.idempotencyKey = newIdempotencyKey();
  }
  await placeOrder();
});

const onCancelPurchase = () => {
  state.purchase = null;
  $("purchase").hidden = true;
};

const onPurchaseDownload = action(async () => {
  const order = state.purchase && state.purchase.order;
  if (!order) return;
  if (typeof order.steer === "string" && order.steer) {
    saveFile(new Blob([order.steer], { type: "application/vnd.secmedia.steer" }), `${order.order_id}.steer`);
    showStatus(`Saved ${order.order_id}.steer.`);
  } else {
    await downloadSteer(order.order_id);
  }
});

// ---- orders -------------------------------------------------------------------------------

async function loadOrders(reset) {
  if (reset) {
    state.ordersShown = 0;
    $("order-list").replaceChildren();
  }
  const page = await api("GET", "/v1/orders", {
    auth: true, params: { limit: ORDERS_PAGE_SIZE, offset: state.ordersShown },
  });
  const orders = page.orders || [];
  for (const o of orders) $("order-list").append(orderItem(o));
  state.ordersShown += orders.length;
  $("orders-empty").hidden = state.ordersShown > 0;
  $("orders-more").hidden = orders.length < ORDERS_PAGE_SIZE;
}

function orderItem(o) {
  const li = el("li", { class: "order", "data-order-id": o.order_id });
  li.append(el("span", { class: "order-title", text: o.title || o.work_id }), " — ",
    el("span", { class: "order-license", text: licenseText(o.license) }), ", ",
    el("span", { class: "order-price", text: points(o.price) }), ", ",
    el("span", { class: "order-date", text: dateText(o.created_at) }), ", ",
    el("span", { class: "order-state", text: o.state }));
  if (o.gift) li.append(" ", el("span", { class: "order-gift", text: "(gift)" }));
  if (o.state === "completed") {
    const b = el("button", { type: "button", class: "download", text: "Download .steer" });
    b.setAttribute("aria-label", `Download the .steer file of ${o.title || o.work_id}`);
    b.addEventListener("click", action(() => downloadSteer(o.order_id)));
    li.append(" ", b);
  }
  return li;
}

async function downloadSteer(orderId) {
  const response = await api("GET", `/v1/orders/${encodeURIComponent(orderId)}/steer`, {
    auth: true, raw: true, headers: { Accept: "application/vnd.secmedia.steer" },
  });
  const name = fileNameFrom(response.headers.get("Content-Disposition"), `${orderId}.steer`);
  saveFile(await response.blob(), name);
  showStatus(`Saved ${name}.`);
}

// ---- start --------------------------------------------------------------------------------

function wire() {
  $("sign-in-form").addEventListener("submit", onSignIn);
  $("sign-up-form").addEventListener("submit", onSignUp);
  $("sign-out").addEventListener("click", onSignOut);
  $("redeem-form").addEventListener("submit", onRedeem);
  $("device-file").addEventListener("change", onDeviceFile);
  $("device-form").addEventListener("submit", onRegisterDevice);
  $("search-form").addEventListener("submit", onSearch);
  $("search-clear").addEventListener("click", onSearchClear);
  $("page-prev").addEventListener("click", onPage(-1));
  $("page-next").addEventListener("click", onPage(1));
  $("preview-player").addEventListener("error", onPreviewError);
  $("purchase-form").addEventListener("submit", onConfirmPurchase);
  $("purchase-retry").addEventListener("click", onRetryPurchase);
  $("purchase-cancel").addEventListener("click", onCancelPurchase);
  $("purchase-download").addEventListener("click", onPurchaseDownload);
  $("orders-more").addEventListener("click", action(() => loadOrders(false)));
}

async function start() {
  wire();
  renderAccount();
  const tasks = [action(loadCatalog)()];
  if (state.token) tasks.push(action(afterSignIn)());
  await Promise.all(tasks);
  document.body.dataset.ready = "true";
}

start();
