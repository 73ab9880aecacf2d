// Drives the expert console in headless Chromium, as an expert would:
// sign in through the Webex stand-in, see the conversation in the queue, filter by desk,
// take it, close it.
// Input (environment): BASE (icbridge's URL), CONVERSATION_ID, SCREENSHOT (a PNG path).
// Output: one JSON line on stdout with what the page showed and what the widget was given.
import { chromium } from 'playwright-core';

const { BASE, CONVERSATION_ID, SCREENSHOT } = process.env;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });

  await page.goto(`${BASE}/console/login`);
  const row = `[data-conversation-id="${CONVERSATION_ID}"]`;
  await page.waitForSelector(row, { timeout: 15000 });
  const shown = await page.$eval(row, (item) => ({
    channel: item.querySelector('.channel').textContent,
    customer: item.querySelector('.customer').textContent,
    lastMessage: item.querySelector('.last-message').textContent,
    join: item.querySelector('a.join').href,
  }));
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  const widgetInits = await page.evaluate(() => window.__widgetInits || []);

  // Opening the row shows the transcript; opening it again hides it.
  await page.click(`${row} .customer`);
  await page.waitForSelector(`${row} .transcript li`, { timeout: 10000 });
  const transcript = await page.$$eval(`${row} .transcript li`, (lines) => lines.map((l) => [l.className, l.textContent]));
  await page.click(`${row} .customer`);
  await page.waitForSelector(`${row} .transcript`, { state: 'detached', timeout: 10000 });

  await page.selectOption('#desk-filter', 'default');
  const desk = await page.textContent(`${row} .desk`);
  await page.click(`${row} button[data-action="take"]`);
  await page.waitForSelector(`${row} button[data-action="release"]`, { timeout: 10000 });
  const taken = await page.textContent(`${row} .assignee`);
  const takeLeft = await page.$$eval(`${row} button[data-action="take"]`, (buttons) => buttons.length);

  await page.click(`${row} button[data-action="close"]`);
  await page.waitForSelector(row, { state: 'detached', timeout: 10000 });
  const status = await page.textContent('#queue-status');

  console.log(JSON.stringify({ url: page.url(), shown, widgetInits, transcript, desk, taken, takeLeft, status, problems }));
} finally {
  await browser.close();
}
