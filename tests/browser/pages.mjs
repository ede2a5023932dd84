// Drives Debian's chromium (playwright-core, nothing downloaded) through calops' booking
// pages, served by the Rust test in tests/it/browser.rs, and prints one JSON document that the
// Rust test asserts on. Input (environment): CALOPS_BASE (the service), CALOPS_BOOKER (the
// booker's path), CALOPS_EMBED_PORT (a free port for the embedding page, which the
// organization allows), CALOPS_404 and CALOPS_INVALID_LINK (paths that must fail politely).
//
// Runs: New York with the keyboard alone (across the March 2027 DST change), Sydney with the
// mouse (across the April 2027 change) then reschedule and cancel through the links, New York
// with JavaScript disabled, the booker embedded in an iframe from another origin (and refused
// from an origin that is not allowed). axe-core checks every page; CSP reports are collected.

import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const axeSource = readFileSync(join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
const base = process.env.CALOPS_BASE;
const booker = process.env.CALOPS_BOOKER;
const embedPort = Number(process.env.CALOPS_EMBED_PORT);
const out = { audits: [], csp: [], errors: [], runs: {} };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});

async function context(opts) {
  const ctx = await browser.newContext({ locale: 'en-US', ...opts });
  ctx.setDefaultTimeout(15000);
  return ctx;
}

function watch(page, run) {
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) {
      out.csp.push({ run, text: m.text() });
    }
  });
  page.on('pageerror', (e) => out.errors.push({ run, text: String(e) }));
}

// axe-core on the page (or frame) as it is now: every violation, with its nodes.
async function audit(target, name) {
  const has = await target.evaluate(() => typeof window.axe !== 'undefined');
  if (!has) await target.evaluate(axeSource);
  const r = await target.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  out.audits.push({
    page: name,
    url: target.url().replace(/([?&])t=[^&]+/, '$1t=***'),
    violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) })),
  });
}

// Press Tab until the focused element passes `test` (a function of the element), then stop.
async function tabTo(page, test, arg, what) {
  for (let i = 0; i < 200; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(([src, a]) => {
      const el = document.activeElement;
      return !!el && (new Function('el', 'a', src))(el, a);
    }, [test, arg])) return;
  }
  throw new Error(`could not reach ${what} with Tab`);
}

const slotTexts = (page) => page.$$eval('ul.slots a', (as) => as.map((a) => a.textContent.trim()));

try {
  // 1. New York, keyboard alone. The script sets the zone from the browser (a redirect adds tz=).
  {
    const ctx = await context({ timezoneId: 'America/New_York' });
    const page = await ctx.newPage();
    watch(page, 'ny-keyboard');
    await page.goto(`${base}${booker}?month=2027-03`);
    await page.waitForURL(/tz=America%2FNew_York/);
    await audit(page, 'booker');
    const tzShown = await page.$eval('#tz', (s) => s.value);
    // Friday 12 March (EST, UTC-5) against Monday 15 March (EDT, UTC-4): 09:00 UTC either way.
    await tabTo(page, "return el.tagName === 'A' && (el.getAttribute('href') || '').includes('date=2027-03-12')", null, 'the 12th');
    await page.keyboard.press('Enter');
    await page.waitForURL(/date=2027-03-12/);
    const before = await slotTexts(page);
    await tabTo(page, "return el.tagName === 'A' && (el.getAttribute('href') || '').includes('date=2027-03-15')", null, 'the 15th');
    await page.keyboard.press('Enter');
    await page.waitForURL(/date=2027-03-15/);
    const after = await slotTexts(page);
    await tabTo(page, "return el.tagName === 'A' && el.textContent.trim() === a", '5:00 AM', 'the 5:00 AM slot');
    await page.keyboard.press('Enter');
    await page.waitForURL(/slot=/);
    await audit(page, 'booker-form');
    await tabTo(page, "return el.id === 'name'", null, 'the name field');
    await page.keyboard.type('Nia <i>York</i>');
    await page.keyboard.press('Tab');
    await page.keyboard.type('nia@example.com');
    await tabTo(page, "return el.tagName === 'BUTTON' && el.closest('form[method=post]')", null, 'the confirm button');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/booking\//);
    await audit(page, 'confirmation');
    out.runs.ny = {
      tzShown, before: before.slice(0, 2), after: after.slice(0, 2),
      when: await page.textContent('#when'),
      heading: await page.textContent('h1'),
      uid: new URL(page.url()).pathname.split('/')[2],
      nameShown: await page.textContent('dl.facts'),
    };
    await ctx.close();
  }

  // 2. Sydney with the mouse across the end of daylight saving time (4 April 2027), then
  //    reschedule and cancel through the links.
  {
    const ctx = await context({ timezoneId: 'Australia/Sydney' });
    const page = await ctx.newPage();
    watch(page, 'sydney');
    await page.goto(`${base}${booker}?month=2027-04`);
    await page.waitForURL(/tz=Australia%2FSydney/);
    await page.click('a[href*="date=2027-04-03"]');
    await page.waitForURL(/date=2027-04-03/);
    const before = await slotTexts(page);
    await page.click('a[href*="date=2027-04-05"]');
    await page.waitForURL(/date=2027-04-05/);
    const after = await slotTexts(page);
    await page.click('ul.slots a:text-is("7:00 PM")');
    await page.waitForURL(/slot=/);
    // A form with problems comes back with them marked (the browser's own checks set aside).
    await page.$eval('form[method=post]', (f) => { f.noValidate = true; });
    await page.fill('#name', 'Syd');
    await page.fill('#email', 'not-an-address');
    await page.click('form[method=post] button');
    await page.waitForSelector('[aria-invalid=true]');
    await audit(page, 'booker-form-errors');
    await page.fill('#email', 'syd@example.com');
    await page.fill('#guests', 'mate@example.com');
    await page.click('form[method=post] button');
    await page.waitForURL(/\/booking\//);
    const booked = {
      when: await page.textContent('#when'),
      uid: new URL(page.url()).pathname.split('/')[2],
    };
    await page.click('#reschedule');
    await page.waitForURL(/\/reschedule/);
    await audit(page, 'reschedule');
    await page.click('a[href*="date=2027-04-06"]');
    await page.waitForURL(/date=2027-04-06/);
    await page.click('ul.slots a:text-is("7:30 PM")');
    await page.waitForURL(/slot=/);
    await page.click('form[method=post] button');
    await page.waitForURL(/\/booking\/[^/]+\?/);
    const moved = {
      when: await page.textContent('#when'),
      uid: new URL(page.url()).pathname.split('/')[2],
    };
    await page.click('#cancel');
    await page.waitForURL(/\/cancel/);
    await audit(page, 'cancel');
    await page.fill('#reason', 'Travelling');
    await page.click('form[method=post] button');
    await page.waitForSelector('h1');
    const cancelled = await page.textContent('h1');
    await audit(page, 'cancelled');
    await page.goBack();
    out.runs.sydney = { before, after, booked, moved, cancelled };
    await ctx.close();
  }

  // 3. New York without JavaScript: the zone chosen in the select and a plain GET form.
  {
    const ctx = await context({ timezoneId: 'America/New_York', javaScriptEnabled: false });
    const page = await ctx.newPage();
    watch(page, 'no-js');
    await page.goto(`${base}${booker}?month=2027-03`);
    const defaultTz = await page.$eval('#tz', (s) => s.value);
    await page.selectOption('#tz', 'America/New_York');
    await page.click('form.inline button');
    await page.waitForURL(/tz=America%2FNew_York/);
    await page.click('a[href*="date=2027-03-16"]');
    await page.waitForURL(/date=2027-03-16/);
    await page.click('ul.slots a:text-is("5:00 AM")');
    await page.waitForURL(/slot=/);
    await page.fill('#name', 'No Script');
    await page.fill('#email', 'nojs@example.com');
    await page.click('form[method=post] button');
    await page.waitForURL(/\/booking\//);
    out.runs.nojs = {
      defaultTz,
      when: await page.textContent('#when'),
      uid: new URL(page.url()).pathname.split('/')[2],
    };
    await ctx.close();
  }

  // 4. Embedded in a page of another origin (allowed), and from an origin that is not.
  {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><html lang="en"><head><title>Partner site</title></head><body>
<main><h1>Partner site</h1>
<iframe id="f" title="Book a call" style="width:100%;border:0" src="${base}${booker}?embed=1&tz=UTC&month=2027-03"></iframe>
</main><script>window.heights = []; addEventListener('message', (e) => {
  if (e.data && e.data.calops === 'height') { window.heights.push(e.data.height);
    document.getElementById('f').style.height = e.data.height + 'px'; } });</script></body></html>`);
    });
    await new Promise((r) => server.listen(embedPort, '127.0.0.1', r));
    const ctx = await context({ timezoneId: 'UTC' });
    const page = await ctx.newPage();
    watch(page, 'embed');
    await page.goto(`http://127.0.0.1:${embedPort}/`);
    const frame = page.frameLocator('#f');
    await frame.locator('h1').waitFor();
    const f = page.frames().find((x) => x.url().includes('embed=1'));
    await audit(f, 'embedded-booker');
    const chrome = await frame.locator('header, footer').count();
    await frame.locator('a[href*="date=2027-03-17"]').click();
    await frame.locator('ul.slots a:text-is("10:00 AM")').click();
    await frame.locator('#name').fill('Framed');
    await frame.locator('#email').fill('framed@example.com');
    await frame.locator('form[method=post] button').click();
    await frame.locator('#when').waitFor();
    const when = await frame.locator('#when').textContent();
    const bookedFrame = page.frames().find((x) => x.url().includes('/booking/'));
    const heights = await page.evaluate(() => window.heights);
    // The same page from an origin that is not on the allow-list: the frame stays empty.
    const page2 = await ctx.newPage();
    watch(page2, 'embed-refused');
    await page2.goto(`http://localhost:${embedPort}/`);
    await page2.waitForTimeout(1500);
    const refusedBooker = await page2.frameLocator('#f').locator('table.cal').count();
    out.runs.embed = {
      chrome, when, heights: heights.length, maxHeight: Math.max(0, ...heights),
      uid: bookedFrame ? new URL(bookedFrame.url()).pathname.split('/')[2] : null,
      refusedBooker,
    };
    await ctx.close();
    server.close();
  }

  // 5. The other pages: home, a host's event types, 404, an invalid link; in German too.
  {
    const ctx = await context({ timezoneId: 'Europe/Berlin', locale: 'de-DE' });
    const page = await ctx.newPage();
    watch(page, 'other');
    await page.goto(`${base}/`);
    await audit(page, 'home');
    await page.goto(`${base}${booker.split('/').slice(0, 3).join('/')}`);
    await audit(page, 'profile');
    await page.goto(`${base}${booker}?month=2027-03`);
    await page.waitForURL(/tz=Europe%2FBerlin/);
    await audit(page, 'booker-de');
    const de = { lang: await page.getAttribute('html', 'lang'), caption: await page.textContent('caption') };
    const r404 = await page.goto(`${base}${process.env.CALOPS_404}`);
    await audit(page, 'not-found');
    const rInvalid = await page.goto(`${base}${process.env.CALOPS_INVALID_LINK}`);
    await audit(page, 'invalid-link');
    out.runs.other = { de, status404: r404.status(), statusInvalid: rInvalid.status() };
    await ctx.close();
  }
} catch (e) {
  out.errors.push({ run: 'driver', text: String(e && e.stack || e) });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
