/**
 * Accessibility (issue 13): accessible names match the visible labels,
 * focus lands somewhere sensible after Join and Leave, the side panel's
 * tabs have tab panels, and axe-core (injected into the page) finds no
 * serious or critical violation on the pre-join screen or in a call.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { axeSerious, describe } from "./support/axe";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";
import { joinViaLink, launch, participant, stepper, waitForRemotes, type Participant } from "./support/browser";

let stack: Stack;
let browser: Browser;
const people: Participant[] = [];

before(async () => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  stack = await startStack();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const step = stepper(people, () => stack.logs, { dir: RESULTS_DIR, tag: "a11y-failure" });

/** The element that has focus, as role and accessible text. */
function focused(page: Page): Promise<{ tag: string; text: string }> {
  return page.evaluate(() => {
    const el = document.activeElement;
    return { tag: el?.tagName.toLowerCase() ?? "", text: (el?.textContent ?? "").trim() };
  });
}

test("pre-join screen: no serious or critical axe violations", { timeout: 60_000 }, async () => {
  const p = await participant(browser, "Pat");
  people.push(p);
  await p.page.goto(`${stack.edge}/room/?r=a11y-pre-${Date.now().toString(36)}`);
  await p.page.getByRole("button", { name: "Join now" }).waitFor();
  await p.page.getByLabel("Your name").fill("Pat");
  await step("axe on the pre-join screen", async () => {
    const vs = await axeSerious(p.page);
    assert.equal(vs.length, 0, `axe found:\n${describe(vs)}`);
  });
  await p.context.close();
});

test("in a call: names match labels, focus after Join and Leave, tabs with panels, axe", { timeout: 120_000 }, async () => {
  const p = await participant(browser, "Quinn");
  people.push(p);
  const roomName = `a11y-call-${Date.now().toString(36)}`;
  const page = p.page;
  await page.goto(`${stack.edge}/room/?r=${roomName}`);
  await page.getByLabel("Your name").fill("Quinn");
  await page.getByRole("button", { name: "Join now" }).click();
  await page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout: 30_000 });

  await step("after Join, focus is on the call's heading", async () => {
    await page.waitForFunction(() => document.activeElement !== document.body && document.activeElement !== null, undefined, { timeout: 5_000 });
    const f = await focused(page);
    assert.deepEqual(f, { tag: "h1", text: roomName });
  });

  // Someone else in the call, so that remote tiles and people are checked too.
  const rae = await participant(browser, "Rae");
  people.push(rae);
  await joinViaLink(rae, `${stack.edge}/room/?r=${roomName}`);
  await step("rae's video tile is up", () => waitForRemotes(p, 1));

  const controls = page.locator('nav[aria-label="Call controls"]');
  await step("each control's accessible name is its visible label", async () => {
    for (const name of ["Mute", "Stop video", "Share", "Devices", "Leave"]) {
      assert.equal(await controls.getByRole("button", { name, exact: true }).count(), 1, `a button named exactly "${name}"`);
    }
    // Every control: the name starts with what it shows.
    const buttons = controls.getByRole("button");
    for (let i = 0; i < (await buttons.count()); i += 1) {
      const b = buttons.nth(i);
      const label = (await b.locator(".ctl-label").innerText()).trim();
      const name = await b.evaluate((el) => el.getAttribute("aria-label"));
      assert.ok(name === null || name.startsWith(label), `"${label}" is announced "${name}"`);
    }
  });

  await step("the side panel's tabs control tab panels", async () => {
    await controls.getByRole("button", { name: "People" }).click();
    const tabs = page.getByRole("tablist").getByRole("tab");
    assert.equal(await tabs.count(), 2);
    for (let i = 0; i < 2; i += 1) {
      const tab = tabs.nth(i);
      const controlsId = await tab.getAttribute("aria-controls");
      assert.ok(controlsId, `tab ${i} has aria-controls`);
      assert.ok(["true", "false"].includes((await tab.getAttribute("aria-selected")) ?? ""), `tab ${i} has aria-selected`);
    }
    const selected = page.getByRole("tab", { selected: true });
    assert.match((await selected.innerText()).trim(), /^People/);
    const panelId = await selected.getAttribute("aria-controls");
    const panel = page.locator(`[id="${panelId}"]`);
    assert.equal(await panel.getAttribute("role"), "tabpanel");
    assert.equal(await panel.getAttribute("aria-labelledby"), await selected.getAttribute("id"));
    assert.equal(await panel.getByTestId("people").count(), 1, "the people list is in the panel");
    // Arrow keys move to the other tab, which shows its panel.
    await selected.focus();
    await page.keyboard.press("ArrowRight");
    const chat = page.getByRole("tab", { selected: true });
    assert.equal((await chat.innerText()).trim(), "Chat");
    assert.equal(await focused(page).then((f) => f.text), "Chat");
    assert.equal(await page.locator(`[id="${await chat.getAttribute("aria-controls")}"]`).getByTestId("chat-log").count(), 1);
  });

  await step("axe in the call (chat panel open)", async () => {
    const vs = await axeSerious(page);
    assert.equal(vs.length, 0, `axe found:\n${describe(vs)}`);
  });
  await step("axe in the call (people panel open)", async () => {
    await page.getByRole("tab", { name: /^People/ }).click();
    await page.getByTestId("people").waitFor();
    const size = (await page.getByTestId("room-size").innerText()).trim();
    assert.match(size, /^2 of \d+ participants/, `room size shown: ${size}`);
    const vs = await axeSerious(page);
    assert.equal(vs.length, 0, `axe found:\n${describe(vs)}`);
  });
  await rae.context.close();

  await controls.getByRole("button", { name: "Leave", exact: true }).click();
  await step("after Leave, focus is on the ended screen's heading", async () => {
    await page.getByTestId("ended").waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => document.activeElement?.tagName === "H1", undefined, { timeout: 5_000 });
    assert.deepEqual(await focused(page), { tag: "h1", text: "You left the call" });
  });
  await step("axe on the ended screen", async () => {
    const vs = await axeSerious(page);
    assert.equal(vs.length, 0, `axe found:\n${describe(vs)}`);
  });
  await p.context.close();
});
