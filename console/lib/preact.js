// The one import of the vendored UI library (htm + Preact + hooks in one file, see
// vendor/README.md), so a version change touches one line.
export {
  html, render, useState, useEffect, useRef, useMemo, useCallback,
} from '../vendor/htm-preact-standalone-3.1.1.js';
