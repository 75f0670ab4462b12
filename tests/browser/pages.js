// Shared by the tests that need no API: Chromium with the console's own files from gateway/web
// served under a secure (https) origin by route interception, so its modules can be imported.
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

export const ORIGIN = "https://console.test";
const WEB = path.resolve(import.meta.dirname, "../../gateway/web");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

/** Launches Chromium (a fresh temporary profile each time) as the brief prescribes. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
}

/** A page on ORIGIN showing the console's index.html; `served` collects the paths fetched. */
export async function consolePage(browser, served = []) {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.route(`${ORIGIN}/**`, (route) => {
    const p = new URL(route.request().url()).pathname;
    const file = path.join(WEB, p === "/" ? "index.html" : p.slice(1));
    if (!file.startsWith(WEB) || !fs.existsSync(file)) return route.fulfill({ status: 404, body: "" });
    served.push(p);
    return route.fulfill({ status: 200, contentType: TYPES[path.extname(file)], body: fs.readFileSync(file) });
  });
  await page.goto(`${ORIGIN}/`);
  await page.locator("#token-input").waitFor();
  return page;
}
