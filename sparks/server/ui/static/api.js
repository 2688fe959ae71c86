// The dashboard's calls to its own daemon: same origin, the session cookie rides along.

export class SignedOut extends Error {}

let onSignedOut = () => {};

export function whenSignedOut(callback) {
  onSignedOut = callback;
}

async function parse(response) {
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    onSignedOut(body?.error?.message);
    throw new SignedOut(body?.error?.message || "signed out");
  }
  if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
  return body;
}

export async function getJSON(path) {
  return parse(await fetch(path, { headers: { Accept: "application/json" } }));
}

export async function postJSON(path, data) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(data ?? {}),
  });
  return parse(response);
}
