// The client's languages: `t(key, vars)` for every user-visible string.
// Keys are the English text (so English needs no table and a missing
// translation shows English); `{name}` placeholders are filled from `vars`.
// The language: the room's `default_language` when the room turns language
// selection off (`language_selection_enabled: false`), else the first of the
// browser's `navigator.languages` we have, else the room's default.

import { DE } from './i18n_de.js';

/** Translation tables by base language; English is the keys themselves. */
const TABLES = { de: DE };

/** Languages with a complete table (English always). */
export const AVAILABLE = ['en', ...Object.keys(TABLES)];

let lang = 'en';
/** Keys asked for that the current language has no entry for (test hook). */
export const missing = new Set();

/** `de-DE` -> `de`. */
function base(code) {
  return String(code || '').toLowerCase().split(/[-_]/)[0];
}

/**
 * Picks the language from the room's facts and the browser's preferences:
 * a room that turns selection off forces its `default_language`; otherwise
 * the first browser language we have wins; the room's default else.
 */
export function chooseLanguage(room, browserLanguages) {
  const fallback = AVAILABLE.includes(base(room.default_language)) ? base(room.default_language) : 'en';
  if (room.language_selection_enabled === false) return fallback;
  for (const l of browserLanguages || []) {
    if (AVAILABLE.includes(base(l))) return base(l);
  }
  return fallback;
}

export function setLanguage(code) {
  lang = AVAILABLE.includes(code) ? code : 'en';
  document.documentElement.lang = lang;
}

export function language() {
  return lang;
}

/** The text for `key` in the current language, `{x}` replaced by `vars.x`. */
export function t(key, vars) {
  let text = key;
  const table = TABLES[lang];
  if (table) {
    if (Object.prototype.hasOwnProperty.call(table, key)) text = table[key];
    else missing.add(key);
  }
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/**
 * Translates the static page: elements marked `data-i18n` get their text
 * translated, and the attributes named in `data-i18n-attrs` (comma
 * separated: placeholder, title, aria-label) theirs. The English in
 * index.html is the key.
 */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    if (el.dataset.i18nKey === undefined) el.dataset.i18nKey = el.textContent.trim();
    el.textContent = t(el.dataset.i18nKey);
  }
  for (const el of root.querySelectorAll('[data-i18n-attrs]')) {
    for (const attr of el.dataset.i18nAttrs.split(',')) {
      const keep = `i18n${attr.replace(/(^|-)(\w)/g, (m, d, c) => c.toUpperCase())}`;
      if (el.dataset[keep] === undefined) el.dataset[keep] = el.getAttribute(attr) || '';
      if (el.dataset[keep]) el.setAttribute(attr, t(el.dataset[keep]));
    }
  }
  if (root === document) document.title = 'Convene';
}
