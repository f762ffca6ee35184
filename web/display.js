// The room display view (`/{room}?token=...&view=display`): what a room
// appliance's TV shows. Subscribe-only (no camera, no microphone), no
// controls, no side panel, no local tile: a full-screen grid of the far end.
//
// main.js wires it in with three hooks (see docs/appliance.md):
//   import { isDisplayView, enterDisplayView } from './display.js';
//   constructor, after `this.want = {...}`:  if (isDisplayView()) enterDisplayView(this);
//   start(), before the join-screen check:  if (this.display && this.token) return this.join(this.tokenName || 'Room display');

/** Whether the page was opened as the room display. */
export function isDisplayView(search = window.location.search) {
  return new URLSearchParams(search).get('view') === 'display';
}

const STYLE = `
body[data-view="display"] #topbar,
body[data-view="display"] #controls,
body[data-view="display"] #side,
body[data-view="display"] #lobby-panel,
body[data-view="display"] #notice,
body[data-view="display"] #grid .tile.local { display: none !important; }
body[data-view="display"] #screen-call,
body[data-view="display"] #grid { position: fixed; inset: 0; width: 100vw; height: 100vh; margin: 0; }
body[data-view="display"] { background: #000; cursor: none; overflow: hidden; }
`;

/** Turns `app` (the App of main.js) into a display: nothing is captured or published. */
export function enterDisplayView(app) {
  app.display = true;
  app.want.microphone = false;
  app.want.camera = false;
  document.body.dataset.view = 'display';
  const style = document.createElement('style');
  style.textContent = STYLE;
  document.head.appendChild(style);
}
