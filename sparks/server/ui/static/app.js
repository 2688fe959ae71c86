// The dashboard: trades a one-time login code for the session cookie, then shows the views.

import { SignedOut, postJSON, whenSignedOut } from "./api.js";
import { refreshActivity, startActivity } from "./activity.js";
import { refreshLive, startLive } from "./live.js";
import { refreshRoutes } from "./routes.js";
import { refreshRuns } from "./runs.js";

const VIEWS = {
  live: { refresh: refreshLive, every: 5000 },
  activity: { refresh: refreshActivity, every: 10000 },
  routes: { refresh: refreshRoutes, every: 10000 },
  runs: { refresh: refreshRuns, every: 5000 },
};
const $ = (id) => document.getElementById(id);
let timer = null;

function signedOut(message) {
  clearTimeout(timer);
  document.querySelectorAll(".view").forEach((view) => { view.hidden = true; });
  $("login").hidden = false;
  $("logout").hidden = true;
  if (message) $("login-message").textContent = message;
  document.body.dataset.state = "signed-out";
}

function currentView() {
  const name = location.hash.slice(1);
  return name in VIEWS ? name : "live";
}

async function show() {
  clearTimeout(timer);
  const name = currentView();
  for (const key of Object.keys(VIEWS)) $(`view-${key}`).hidden = key !== name;
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
  try {
    await VIEWS[name].refresh();
    $(`view-${name}`).dataset.loaded = "true";
  } catch (error) {
    if (error instanceof SignedOut) return;
    $("connection").textContent = `error: ${error.message}`;
    $("connection").className = "err";
  }
  if (currentView() === name) timer = setTimeout(show, VIEWS[name].every);
}

async function exchangeCode() {
  const match = location.hash.match(/^#code=([A-Za-z0-9_-]+)$/);
  if (!match) return;
  history.replaceState(null, "", `${location.pathname}#live`); // the code is used up either way
  try {
    await postJSON("api/session", { code: match[1] });
  } catch (error) {
    signedOut(error.message);
    throw error;
  }
}

async function main() {
  whenSignedOut(signedOut);
  // a new login link opened in this tab changes only the hash: start over with it
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#code=")) location.reload();
  });
  try {
    await exchangeCode();
    await startLive();
  } catch {
    return; // signed out: the message is on the page
  }
  document.body.dataset.state = "signed-in";
  $("login").hidden = true;
  $("logout").hidden = false;
  $("logout").addEventListener("click", async () => {
    await postJSON("api/logout").catch(() => {});
    signedOut("Signed out. Run `sparks ui` to sign in again.");
  });
  startActivity(show);
  window.addEventListener("hashchange", show);
  await show();
}

main();
