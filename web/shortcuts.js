// Keyboard shortcuts in the call and the dialog that lists them. A shortcut
// is a plain key (no Ctrl/Alt/Meta) pressed outside a text field, so typing
// in the chat never toggles anything; each acts by clicking the control's
// own button, so a shortcut does exactly what the button does (and nothing
// when the button is hidden or disabled).

import { t } from './i18n.js';

/** The shortcuts, in the order the help dialog lists them. */
export const SHORTCUTS = [
  { key: 'm', button: 'ctl-mic', what: 'Turn the microphone on or off' },
  { key: 'v', button: 'ctl-cam', what: 'Turn the camera on or off' },
  { key: 'h', button: 'ctl-hand', what: 'Raise or lower your hand' },
  { key: 'c', button: 'ctl-panel', what: 'Show or hide chat and polls' },
  { key: 'L', button: 'ctl-leave', what: 'Leave the meeting (Shift+L)' },
  { key: '?', button: 'ctl-help', what: 'Show these shortcuts' },
];

function typing(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  return ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName);
}

/** The shortcut for a key event, or null. */
export function shortcutFor(ev) {
  if (ev.ctrlKey || ev.altKey || ev.metaKey || ev.repeat || typing(ev.target)) return null;
  return SHORTCUTS.find((s) => s.key === ev.key) || null;
}

/**
 * Listens for shortcuts while `active()` is true and fills the help dialog.
 * `onUsed(shortcut)` is told of every shortcut that clicked a button.
 */
export function bindShortcuts({ active, onUsed = () => {} }) {
  const dialog = document.getElementById('help-dialog');
  const list = document.getElementById('help-list');
  if (list && !list.children.length) {
    for (const s of SHORTCUTS) {
      const row = document.createElement('div');
      const dt = document.createElement('dt');
      const kbd = document.createElement('kbd');
      kbd.textContent = s.key === 'L' ? 'Shift+L' : s.key.toUpperCase();
      dt.append(kbd);
      const dd = document.createElement('dd');
      dd.textContent = t(s.what);
      row.append(dt, dd);
      list.append(row);
    }
  }
  const open = () => {
    if (!dialog || dialog.open) return;
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
  };
  const help = document.getElementById('ctl-help');
  if (help) help.addEventListener('click', open);
  const close = document.getElementById('help-close');
  if (close && dialog) close.addEventListener('click', () => dialog.close());
  document.addEventListener('keydown', (ev) => {
    if (!active()) return;
    const s = shortcutFor(ev);
    if (!s) return;
    if (dialog && dialog.open && s.key !== '?') return;
    const button = document.getElementById(s.button);
    if (!button || button.hidden || button.disabled) return;
    ev.preventDefault();
    button.click();
    onUsed(s);
  });
}
