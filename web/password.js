// Room passwords: the join screen's password field (shown when the room's
// facts say `has_password` and the page has no token) and the hint a
// refused password shows before the user tries again.

import { t } from './i18n.js';

/** Refusals of a name-only join to a room with a password (docs/signaling.md). */
export const PASSWORD_CODES = new Set(['PASSWORD_REQUIRED', 'PASSWORD_INVALID', 'PASSWORD_RATE_LIMITED']);

const $ = (id) => document.getElementById(id);

/** Shows the password field when the join needs one; whether it does. */
export function setupPassword(room, token) {
  const needed = Boolean(room.has_password) && !token;
  $('password-row').hidden = !needed;
  $('password-input').required = needed;
  return needed;
}

/** The password typed in, or undefined when the field is hidden or empty. */
export function typedPassword() {
  if ($('password-row').hidden) return undefined;
  return $('password-input').value || undefined;
}

/** The hint for a refused password (the `error` frame: `retry_after` is the wait in seconds). */
export function refusalText(m) {
  const code = m.code;
  if (code === 'PASSWORD_RATE_LIMITED') {
    const seconds = Number.isInteger(m.retry_after) && m.retry_after > 0 ? m.retry_after : 60;
    return t('Too many wrong passwords. Try again in {seconds} seconds.', { seconds });
  }
  if (code === 'PASSWORD_INVALID') return t('The password is wrong. Please try again.');
  return t('This room has a password. Please enter it.');
}

/** Clears and focuses the field for another try. */
export function retryPassword() {
  $('password-input').value = '';
  $('password-input').focus();
}
