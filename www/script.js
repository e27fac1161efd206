// Web UI for the MobileNet V2 classifier. No framework, no build step: an ES module served as is.
// The top half is pure functions (exported so the browser tests can check them in a real engine);
// the bottom half is the thin DOM adapter that wires them to the page.

// Shorter side of the upload in px. The model resizes the shorter side to 256 (232 with the IMAGENET1K_V2 weights:
// model/package.py PRESETS) then centre-crops 224, so anything larger is bytes on the wire that it throws away.
export const TARGET_SHORT_SIDE = 256;
// The model reads only the centre 224 px square, so a panorama's far ends are bytes it throws away too: the
// page sends at most this many times the shorter side along the longer one, centred. That keeps every 12 MP
// shape as light as a 4:3 photo, and a 1:20 strip keeps its 256 px shorter side instead of shrinking to fit.
export const MAX_ASPECT = 2;
// The model is sensitive to JPEG artefacts at this size. `python -m bench.jpeg_quality` on 13 images (the four
// samples and nine from scikit-learn's, Matplotlib's and scikit-image's sample data), Chromium's encoder against
// the same canvas sent as PNG, largest probability change per image: q0.9 median 0.10, mean 0.10, up to 0.25;
// q0.95 median 0.05, mean 0.07, up to 0.26. q0.95 moves less on 9 of the 13; one image (a retina scan) changes its
// top-1 at either quality. 9-53 KB instead of 5-38 KB.
export const JPEG_QUALITY = 0.95;
// What one upload may weigh. Only unusually busy pixels exceed it at q0.95; they are re-encoded at the next lower
// quality until they fit.
export const MAX_UPLOAD_BYTES = 60 * 1024;
export const FALLBACK_JPEG_QUALITIES = [0.9, 0.8, 0.7, 0.6, 0.5];
export const TOP_K = 5;
// Attempts in total (the first try plus retries) for 429/503, so a cold endpoint cannot spin forever; of those,
// one retry at most after the function's own 504, and one after API Gateway's own 503.
export const MAX_ATTEMPTS = 4;
export const MAX_RETRY_DELAY_MS = 8000;
// Decoding a huge file can freeze a phone; no real photo is this big.
export const MAX_INPUT_BYTES = 50 * 1024 * 1024;
// A decode holds 4 bytes a pixel whatever the file weighs: a tiny PNG or JPEG may declare 40000x40000 pixels,
// 6.4 GB, enough to run a tab out of memory. The page shrinks before sending, so any real photo must open,
// 200 MP phones' 16320x12240 (0.8 GB decoded) included; a file whose header declares more is refused undecoded.
export const MAX_INPUT_PIXELS = 250 * 1000 * 1000;
// Where a file's pixel size is looked for: a JPEG's frame header comes after its EXIF, ICC and XMP segments.
export const HEADER_BYTES = 1024 * 1024;
// API Gateway gives up after 29 s (the integration timeout) and answers a bare 503 of its own; a little more so
// that answer reaches us rather than our abort.
export const REQUEST_TIMEOUT_MS = 35000;
// The body of that bare 503.
export const API_GATEWAY_503_MESSAGE = "Service Unavailable";
// A warm answer takes a fraction of a second; one this slow is most likely an endpoint that scaled to zero and is
// starting again (serverless cold start), so the page says why the wait is long.
export const SLOW_ANSWER_MS = 5000;
// It follows "Classifying…", or a retry's "Try 2 of 4…", on its line (style.css): short enough for both to fit the
// two lines the answer takes on a 320 px phone, and one line on a desktop, so the photo under the status does not
// move as it comes and goes. After "Classifying (try 2 of up to 4)…" it took three lines at 320-375 px.
export const SLOW_ANSWER_HINT = "Waking the model up: this can take tens of seconds.";

export const NOT_AN_IMAGE_MESSAGE = "This file is not an image we can read (JPEG, PNG or WebP).";
// The browser cannot tell a broken file from one with more pixels than it will decode: say both.
export const CANNOT_DECODE_MESSAGE =
  "This browser could not open the file: it is not an image the browser can show (JPEG, PNG, WebP…), " +
  "or it has too many pixels.";
// 0 bytes: typically a photo still downloading or syncing (a cloud drive's placeholder), not a broken image.
export const EMPTY_FILE_MESSAGE =
  "This file is empty (0 bytes). If it is still downloading or syncing, wait until it is done, then pick it again.";
// A picked file is read again on each Classify; moved, deleted or rewritten since, every read of it fails.
export const FILE_CHANGED_MESSAGE =
  "This file could not be read: it was moved, deleted or changed since you chose it. Choose it again.";
export const NO_FILE_DROPPED_MESSAGE =
  "What was dropped holds no file (a link or text?). Drop a photo file, or save the image first.";
export const FOLDER_DROPPED_MESSAGE = "That is a folder: open it and drop one photo from it.";
// A read that never ends: a cloud drive's placeholder the system must fetch first, a network share gone quiet.
export const FILE_STALLED_MESSAGE =
  "This file could not be read in time: if it is on a cloud drive or a network share, make sure it is " +
  "downloaded, then pick it again.";
export const SAMPLE_NOT_LOADED_MESSAGE =
  "The sample photo could not be downloaded. Check your connection and try again.";

// A HEIF file's ftyp brands that are not AVIF's: HEVC-coded ones (HEIC), and the codec-neutral mif1/msf1 that some
// writers give as the main brand. An AVIF lists mif1 too, but says avif or avis as well.
const HEIC_BRANDS = ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "mif1", "msf1"];

/** "heic" or "tiff" when a file's first bytes say it is one, else null. A name and a type can say otherwise: a
 * HEIC photo saved or renamed as .jpg is typed image/jpeg. */
export function sniffedFormat(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes || 0);
  const text = (offset) => String.fromCharCode(...b.subarray(offset, offset + 4));
  if (["II*\0", "MM\0*", "II+\0", "MM\0+"].includes(text(0))) return "tiff"; // classic and BigTIFF, either byte order
  if (text(4) === "ftyp") {
    // The major brand, a minor version, then the compatible brands to the end of the box.
    const end = Math.min(b.length, new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0) || b.length);
    const brands = [text(8)];
    for (let at = 16; at + 4 <= end; at += 4) brands.push(text(at));
    if (brands.includes("avif") || brands.includes("avis")) return null;
    if (brands.some((brand) => HEIC_BRANDS.includes(brand))) return "heic";
  }
  return null;
}

/** The refusal for a file the browser could not decode, naming its format when the file says which it is: by its
 * first bytes (`head`) first, else by its name or type. */
export function cannotDecodeMessage(name = "", type = "", head = null) {
  const ext = (/\.([a-z0-9]+)$/i.exec(String(name)) || ["", ""])[1].toLowerCase();
  const mime = String(type).toLowerCase();
  const sniffed = sniffedFormat(head);
  if (sniffed === "heic" || (!sniffed && (/^image\/hei[cf]/.test(mime) || ext === "heic" || ext === "heif"))) {
    return "This browser cannot open HEIC/HEIF photos (the iPhone's format). Please use a JPEG, PNG or WebP copy.";
  }
  if (sniffed === "tiff" || (!sniffed && (mime === "image/tiff" || ext === "tif" || ext === "tiff"))) {
    return "This browser cannot open TIFF images. Please use a JPEG, PNG or WebP copy.";
  }
  if (mime === "image/svg+xml" || ext === "svg") {
    return "SVG drawings cannot be classified here. Please use a photo: JPEG, PNG or WebP.";
  }
  return CANNOT_DECODE_MESSAGE;
}

/** The refusal for an image whose header declares more pixels than MAX_INPUT_PIXELS, with both numbers. */
export function tooManyPixelsMessage(width, height, maxPixels = MAX_INPUT_PIXELS) {
  // Rounded up, so a file just over the limit never reads as the limit itself.
  const mp = (pixels) => Math.ceil(pixels / 1e6);
  return (
    `This image has too many pixels to open here (${width}×${height}, ${mp(width * height)} megapixels; ` +
    `the limit is ${mp(maxPixels)} megapixels). Please use a smaller copy.`
  );
}

/**
 * The pixel size a file's header declares, {width, height}, read from its first bytes without decoding it:
 * JPEG (any frame type), PNG, GIF, WebP (VP8, VP8L, VP8X), BMP, and AVIF/HEIF (the largest `ispe`). null when the
 * format is another, or the header is not within `bytes`: the browser's decoder is then the only judge.
 */
export function declaredSize(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const has = (offset, length) => offset >= 0 && offset + length <= b.length;
  const ascii = (offset, text) =>
    has(offset, text.length) && Array.from(text).every((c, i) => b[offset + i] === c.charCodeAt(0));
  const size = (width, height) => ({ width, height });

  if (b[0] === 0xff && b[1] === 0xd8) {
    for (let i = 2; has(i, 4); ) {
      const marker = b[i + 1];
      if (b[i] !== 0xff || marker === 0xff) {
        i += 1; // a stray byte between segments (libjpeg skips them, as the browsers' decoders do) or a fill byte
      } else if (marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
        i += 2; // markers without a length
      } else if (marker === 0xd9 || marker === 0xda) {
        return null; // end of image, or scan data, before any frame header
      } else if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return has(i + 5, 4) ? size(view.getUint16(i + 7), view.getUint16(i + 5)) : null;
      } else {
        i += 2 + view.getUint16(i + 2);
      }
    }
    return null;
  }
  if (ascii(0, "\x89PNG\r\n\x1a\n") && ascii(12, "IHDR") && has(16, 8)) {
    return size(view.getUint32(16), view.getUint32(20));
  }
  if ((ascii(0, "GIF87a") || ascii(0, "GIF89a")) && has(6, 4)) {
    return size(view.getUint16(6, true), view.getUint16(8, true));
  }
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) {
    if (ascii(12, "VP8 ") && has(26, 4)) {
      return size(view.getUint16(26, true) & 0x3fff, view.getUint16(28, true) & 0x3fff);
    }
    if (ascii(12, "VP8L") && has(21, 4)) {
      const bits = view.getUint32(21, true);
      return size((bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
    }
    if (ascii(12, "VP8X") && has(24, 6)) {
      const u24 = (offset) => b[offset] | (b[offset + 1] << 8) | (b[offset + 2] << 16);
      return size(u24(24) + 1, u24(27) + 1);
    }
    return null;
  }
  if (ascii(0, "BM") && has(14, 12)) {
    if (view.getUint32(14, true) === 12) return size(view.getUint16(18, true), view.getUint16(20, true));
    return size(Math.abs(view.getInt32(18, true)), Math.abs(view.getInt32(22, true)));
  }
  if (ascii(4, "ftyp")) {
    // HEIF/AVIF: the image properties ('ispe', spatial extent) in meta/iprp/ipco, walked box by box, as the bytes
    // "ispe" may occur by chance in the compressed pixels. A gridded photo declares each tile and the whole: the
    // largest is the photo.
    function* boxes(start, end) {
      for (let at = start; at + 8 <= end && has(at, 8); ) {
        let length = view.getUint32(at);
        let header = 8;
        if (length === 1 && has(at + 8, 8)) {
          length = view.getUint32(at + 8) * 2 ** 32 + view.getUint32(at + 12);
          header = 16;
        } else if (length === 0) {
          length = end - at;
        }
        if (length < header) return;
        yield { type: at + 4, start: at + header, end: Math.min(end, at + length) };
        at += length;
      }
    }
    const child = (parent, type) =>
      parent && Array.from(boxes(parent.start, parent.end)).find((box) => ascii(box.type, type));
    const meta = child({ start: 0, end: b.length }, "meta");
    // meta is a full box: its version and flags come before its children.
    const ipco = child(child(meta && { start: meta.start + 4, end: meta.end }, "iprp"), "ipco");
    let best = null;
    for (const box of ipco ? boxes(ipco.start, ipco.end) : []) {
      if (!ascii(box.type, "ispe") || !has(box.start + 4, 8)) continue;
      const found = size(view.getUint32(box.start + 4), view.getUint32(box.start + 8));
      if (!best || found.width * found.height > best.width * best.height) best = found;
    }
    return best;
  }
  return null;
}

/**
 * What to send for a width x height image: the canvas size (shorter side `shortSide`, never upscaled, aspect
 * ratio kept up to `maxAspect`) and the centred source rectangle drawn into it. The server resizes the shorter
 * side to 256 (IMAGENET1K_V1's preprocessing) and classifies the centre 224 px square; cutting the same number of
 * pixels off both ends leaves that square where it was. That number is kept even: the server rounds a half-pixel
 * centre offset to even, as torchvision does, and an odd shift would move the square by one pixel. That holds for
 * images sent at a 256 px shorter side; a smaller one is upscaled by the server, the cut scales with it, and the
 * square moves by up to a pixel (255x1000, 120x400). IMAGENET1K_V2's resize to 232 rescales every upload, and there
 * a cut moves the square by up to 1.3 px of the upload.
 */
export function uploadGeometry(width, height, shortSide = TARGET_SHORT_SIDE, maxAspect = MAX_ASPECT) {
  if (!(width > 0 && height > 0)) {
    throw new RangeError(`image size must be positive, got ${width}x${height}`);
  }
  const scale = Math.min(1, shortSide / Math.min(width, height));
  const full = { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
  const limit = Math.floor(maxAspect * Math.min(full.width, full.height));
  const keep = (side) => {
    if (side <= limit) return side;
    const even = side - 4 * Math.ceil((side - limit) / 4);
    // With a 1 to 3 px shorter side, cutting whole fours can leave no pixels at all (a 1x100 image became a 1x0
    // canvas, refused as undecodable), or just a square (2x602 became 2x2, 3x603 3x3). The server reads the centre
    // 7/8 of a square, upscaled, blending in the pixels next to that, which the square had lost: the edges of what
    // the model saw were 40 to 90 levels off its view of the whole strip. The server upscales such a sliver 85x or
    // more anyway, so the even cut is worth nothing there: the longest centred cut is sent instead.
    return even > limit / 2 ? even : limit - ((side - limit) % 2);
  };
  const out = { width: keep(full.width), height: keep(full.height) };
  const sw = (out.width * width) / full.width;
  const sh = (out.height * height) / full.height;
  return {
    width: out.width,
    height: out.height,
    source: { x: (width - sw) / 2, y: (height - sh) / 2, width: sw, height: sh },
    cropped: out.width !== full.width || out.height !== full.height,
  };
}

/** Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or null when absent/garbled. */
export function parseRetryAfter(value, nowMs = Date.now()) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - nowMs) / 1000));
}

/**
 * Delay before retry number `attempt` (1 = first retry): at least what the server asked for, doubling
 * from 1 s otherwise, capped, plus up to 20% jitter so many clients woken by one cold start spread out.
 * null when the server asks for more than the cap: a sooner retry would disregard it, and a page kept busy
 * that long is worse than saying when to come back.
 */
export function retryDelayMs(attempt, retryAfterSeconds = null, random = Math.random) {
  const exponential = 1000 * 2 ** Math.max(0, attempt - 1);
  const asked = retryAfterSeconds === null ? 0 : retryAfterSeconds * 1000;
  if (asked > MAX_RETRY_DELAY_MS) return null;
  const base = Math.min(MAX_RETRY_DELAY_MS, Math.max(asked, exponential));
  return Math.round(base + base * 0.2 * random());
}

// The precision or unit is chosen after rounding: 0.9996% read "1.00%" beside "1.0%", 999.6 ms "1000 ms" and
// 1048575 bytes "1024.0 KB"; under 1 KB the size is in bytes.
export function formatPercent(prob) {
  const pct = Math.min(100, Math.max(0, prob * 100));
  const fine = pct.toFixed(2);
  return Number(fine) >= 1 ? `${pct.toFixed(1)}%` : `${fine}%`;
}

// Below this the top answer is a guess: the model knows only ImageNet's 1000 categories, and a photo of none
// of them (a blank wall, a diagram) still gets its "best" one, often at a few percent.
export const LOW_CONFIDENCE = 0.25;

/** Whether the top answer is only a guess: the results then say why (index.html's #guess-note). */
export function isGuess(predictions, lowConfidence = LOW_CONFIDENCE) {
  return predictions.length > 0 && predictions[0].prob < lowConfidence;
}

/**
 * The status line once predictions arrive: a confident answer is stated, a low one is called a guess. Both are
 * short: on a phone the photo under the status stays put as long as the answer fits the two lines the status keeps
 * (style.css). "Done, not sure: best guess <label> (p%)." took three at 320-375 px for 40 of ImageNet's labels
 * ("German short-haired pointer"), "Done: most likely …" for 15 at 320; these take three for one label only,
 * "American Staffordshire terrier" at 320 px, whose words fill two lines alone. Why the model can only guess is
 * said under the predictions, below the photo.
 */
export function describeTopPrediction(predictions, lowConfidence = LOW_CONFIDENCE) {
  const top = predictions[0];
  if (!top) return "Done.";
  const answer = `${top.label} (${formatPercent(top.prob)})`;
  return isGuess(predictions, lowConfidence) ? `Just a guess: ${answer}.` : `Most likely: ${answer}.`;
}

export function formatMs(ms) {
  return Math.round(ms) >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function formatBytes(bytes) {
  // A tiny file read "0.0 KB".
  if (bytes < 1024) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
  const kb = (bytes / 1024).toFixed(1);
  return Number(kb) >= 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MB` : `${kb} KB`;
}

export class BadResponseError extends Error {
  constructor(message) {
    super(message);
    this.name = "BadResponseError";
  }
}

/**
 * A 200's body as JSON. The API answers nothing else: a web page in its place came from something in between (a
 * proxy, a network's sign-in page), and was told as JSON without its list ("the answer has no 'predictions' list").
 */
export function parseSuccessBody(text, contentType) {
  try {
    return JSON.parse(text);
  } catch {
    if (!text.trim()) throw new BadResponseError("an empty body");
    if (/^text\/html\b/i.test(contentType || "") || /^\s*</.test(text)) {
      throw new BadResponseError("a web page instead of JSON, most likely from a proxy or a network's sign-in page");
    }
    throw new BadResponseError("not JSON");
  }
}

/** The predictions of a 200 body, validated, so a malformed answer is an error instead of a blank list. */
export function parsePredictions(body) {
  if (!body || !Array.isArray(body.predictions) || body.predictions.length === 0) {
    throw new BadResponseError("the answer has no 'predictions' list");
  }
  return body.predictions.map((p, i) => {
    if (!p || typeof p.label !== "string" || typeof p.prob !== "number" || !(p.prob >= 0 && p.prob <= 1)) {
      throw new BadResponseError(`predictions[${i}] needs a string 'label' and a 'prob' from 0 to 1`);
    }
    return { label: p.label, prob: p.prob };
  });
}

/** An error body as the API or a proxy sent it: JSON as is, plain text as the message, markup dropped. */
export function parseErrorBody(text, contentType) {
  try {
    return JSON.parse(text);
  } catch {
    const plain = /^text\/plain\b/i.test(contentType || "");
    return plain && text.trim() ? { message: text.trim().slice(0, 300) } : null;
  }
}

/** "50.1 MB": rounded up, so a file just over a limit never reads as the limit itself. */
export function formatMegabytesUp(bytes) {
  return `${(Math.ceil((bytes / (1024 * 1024)) * 10) / 10).toFixed(1)} MB`;
}

/** The text with a no-break space between each number and the unit after it ("30 s", "50.1 MB", "1600 megapixels"):
 * a narrow screen wrapped "asks for 30" / "s before another try" (375 px) and "retrying in 6" / "s…" (360 px). */
export function keepUnitsWhole(text) {
  return String(text).replace(/(\d) (ms|s|bytes?|KB|MB|megapixels)(?![\p{L}\p{N}])/gu, "$1\u00a0$2");
}

/**
 * A file name in pieces, for a line to break between them only: after each "_" and "-", and before each ".". A
 * camera's name is one word to the browser (a digit after "-" is no break either): on a phone "Chosen:
 * PXL_20241103_153012345.MP.jpg" took three lines at 320 px, "Chosen:", "PXL_20241103_153012345.MP.j" and "pg".
 */
export function fileNamePieces(name) {
  const pieces = [];
  let piece = "";
  for (const char of String(name)) {
    if (char === "." && piece !== "") {
      pieces.push(piece);
      piece = "";
    }
    piece += char;
    if (char === "_" || char === "-") {
      pieces.push(piece);
      piece = "";
    }
  }
  return piece === "" ? pieces : [...pieces, piece];
}

/** "Round trip 120 ms · server 41 ms (model endpoint 35 ms)"; parts the server did not send are left out. */
export function describeTiming(roundTripMs, latency) {
  const parts = [`Round trip ${formatMs(roundTripMs)}`];
  if (latency && typeof latency.total === "number") {
    let server = `server ${formatMs(latency.total)}`;
    if (typeof latency.endpoint === "number") server += ` (model endpoint ${formatMs(latency.endpoint)})`;
    parts.push(server);
  }
  return parts.join(" · ");
}

/**
 * What to tell the user about a non-2xx answer. `retry` is true for the statuses that heal by waiting;
 * for those `message(seconds)` builds the "retrying in Ns" text, and `once` allows a single retry of that kind.
 */
export function describeFailure(status, body) {
  const serverMessage = body && typeof body.message === "string" ? body.message : "";
  const code = body && typeof body.error === "string" ? body.error : "";
  const withServer = (text) => (serverMessage ? `${text}: ${serverMessage}` : `${text}.`);
  switch (status) {
    case 429:
      // API Gateway's own 429 ({"message":"Too Many Requests"}, no error code) is its stage throttling, the
      // API's rate limit, refused before the function runs; only the function's 429 (`throttled`) is the model's.
      if (!code) {
        return {
          retry: true,
          message: (s) => `Too many requests to the API right now, retrying in ${s} s…`,
          giveUp: "The API is still getting too many requests after several tries. Please try again in a minute.",
          later: (s) =>
            `The API is getting too many requests and asks for ${s} s before another try. Please try again then.`,
        };
      }
      return {
        retry: true,
        message: (s) => `The model is busy, retrying in ${s} s…`,
        giveUp: "The model is still busy after several tries. Please try again in a minute.",
        later: (s) => `The model is busy and asks for ${s} s before another try. Please try again then.`,
      };
    case 503:
      // A bare 503 that says something other than API Gateway's "Service Unavailable" is not that timeout: the
      // local stack's stop answers "The local stack is stopping.", and waiting for it would only mislead.
      if (!code && serverMessage && serverMessage !== API_GATEWAY_503_MESSAGE) {
        return { retry: false, message: withServer("The API is unavailable") };
      }
      // API Gateway's own 503 has no error code: its 29 s integration timeout ran out before the function
      // answered (the function gives up within its 25 s budget with its own 504), so each try can take that
      // long: one more.
      if (!code) {
        return {
          retry: true,
          once: true,
          message: (s) => `The API did not answer in time, retrying in ${s} s…`,
          giveUp: "The API did not answer in time. Please try again in a minute.",
          later: (s) => `The API did not answer in time and asks for ${s} s before another try. Please try again then.`,
        };
      }
      return {
        retry: true,
        message: (s) => `The model is warming up, retrying in ${s} s…`,
        giveUp: "The model is still warming up after several tries. Please try again in a minute.",
        later: (s) => `The model is warming up and asks for ${s} s before another try. Please try again then.`,
      };
    case 413:
      return { retry: false, message: "Image too large for the API, even after shrinking. Try a smaller photo." };
    case 415:
      return { retry: false, message: NOT_AN_IMAGE_MESSAGE };
    case 400:
    case 422:
      if (code === "invalid_image" || status === 422) return { retry: false, message: NOT_AN_IMAGE_MESSAGE };
      return { retry: false, message: withServer("The API rejected the request") };
    case 502:
      // The model endpoint failed (or a proxy did): not a verdict on the photo, which a 400/422 would be.
      return { retry: false, message: withServer("The model could not answer") };
    case 504:
      // Our function's own timeout (not API Gateway's bare 504): typically the first request to an endpoint
      // that scaled to zero, still starting after the function's two 10 s reads (about 20 s). One more try
      // usually finds it warm; only one, since each can take that long again.
      if (code === "endpoint_timeout") {
        return {
          retry: true,
          once: true,
          message: (s) => `The model is slow to start, retrying in ${s} s…`,
          // Not the server's "did not answer in time; retry." after the page's own retry.
          giveUp: "The model is still slow to start after another try. Please try again in a minute.",
          later: (s) => `The model is slow to start and asks for ${s} s before another try. Please try again then.`,
        };
      }
      return { retry: false, message: withServer("The model took too long to answer") };
    case 500:
      return { retry: false, message: withServer("The server hit an internal error") };
    default:
      return { retry: false, message: withServer(`Unexpected answer from the API (HTTP ${status})`) };
  }
}

/** The paste shortcut's modifier key as the keyboard labels it: Cmd on Apple platforms, Ctrl elsewhere. */
export function pasteModifier(platform) {
  return /^(mac|iphone|ipad|ipod)/i.test(String(platform || "")) ? "Cmd" : "Ctrl";
}

/** `${apiUrl}/predict?top_k=N` from config.js's apiUrl; throws naming the field when it is unusable. */
export function predictUrl(config, topK = TOP_K) {
  if (!config || typeof config.apiUrl !== "string" || config.apiUrl === "") {
    throw new TypeError("window.APP_CONFIG.apiUrl is missing: config.js did not load or is empty");
  }
  let base;
  try {
    base = new URL(config.apiUrl);
  } catch {
    throw new TypeError(`window.APP_CONFIG.apiUrl is not a URL: ${config.apiUrl}`);
  }
  const url = new URL(`${base.href.replace(/\/+$/, "")}/predict`);
  url.searchParams.set("top_k", String(topK));
  return url.href;
}

// ---------------------------------------------------------------------------------------------------
// DOM adapter.

class NotAnImageError extends Error {
  /** `head`: the file's first bytes, which may name its format (cannotDecodeMessage); null for a sample's URL. */
  constructor(head = null) {
    super();
    this.head = head;
  }
}

/** The file's bytes cannot be read at all (NotReadableError): not a broken image, a file gone or changed. */
class FileUnreadableError extends Error {}

/** A sample that would not open: this site's own JPEG, so one whose download failed, not one the browser cannot read
 * (it was told as "could not open the file: it is not an image the browser can show"). */
class SampleNotLoadedError extends Error {}

/** A picked, dropped or pasted file whose read did not end in time (FILE_STALLED_MESSAGE). */
class FileStalledError extends Error {}

class TooManyPixelsError extends Error {
  constructor({ width, height }) {
    super(tooManyPixelsMessage(width, height));
    this.name = "TooManyPixelsError";
  }
}

/** A file's first HEADER_BYTES, where its pixel size and its format are read. Blob.arrayBuffer is missing before
 * Safari 14; a Response reads any Blob. */
async function headOf(blob) {
  const head = blob.slice(0, HEADER_BYTES);
  try {
    return new Uint8Array(await (typeof head.arrayBuffer === "function" ? head : new Response(head)).arrayBuffer());
  } catch {
    throw new FileUnreadableError();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** node.replaceChildren(...children), which Safari has only from 14 (the page runs from 13.1: headOf's fallback). */
function replaceContent(node, ...children) {
  node.textContent = "";
  node.append(...children);
}

/** AbortSignal.timeout(ms), made by hand where it is missing (Safari before 16: iPhones that stop at iOS 15). */
function timeoutSignal(ms) {
  if (typeof AbortSignal.timeout === "function") return AbortSignal.timeout(ms);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DOMException("signal timed out", "TimeoutError")), ms);
  return controller.signal;
}

/** Decodes with EXIF orientation applied; the <img> fallback is for engines without createImageBitmap, or without
 * its "from-image" (Safari before 17, Firefox before 111), which reject that option with a TypeError. */
async function decodeBlob(blob) {
  // Before any decode: the decoders (createImageBitmap's, and the <img> fallback's) allocate every declared pixel.
  const head = await headOf(blob);
  let declared = null;
  try {
    declared = declaredSize(head);
  } catch {
    // a header it cannot parse: the decoder judges the file
  }
  if (declared && declared.width * declared.height > MAX_INPUT_PIXELS) throw new TooManyPixelsError(declared);
  if (typeof createImageBitmap === "function") {
    try {
      return await createImageBitmap(blob, { imageOrientation: "from-image" });
    } catch (err) {
      if (!(err instanceof TypeError)) throw new NotAnImageError(head);
    }
  }
  const url = URL.createObjectURL(blob);
  try {
    return await decodeUrl(url);
  } catch (err) {
    throw err instanceof NotAnImageError ? new NotAnImageError(head) : err;
  } finally {
    URL.revokeObjectURL(url);
  }
}

// Samples load as images, not with fetch(): the CDN's CSP allows img-src 'self' but connect-src only
// the API origin. Browsers apply EXIF orientation to <img> by default.
async function decodeUrl(url) {
  const img = new Image();
  img.src = url;
  try {
    await img.decode();
  } catch {
    throw new NotAnImageError();
  }
  return img;
}

/** A sample's pixels. A download that stalls is given up on as the API's answer is: the browser has no timeout of its
 * own for it, and the page stayed "Shrinking the photo…", every control disabled, for as long as it hung. */
async function decodeSample(src) {
  try {
    return await withinTime(decodeUrl(src), REQUEST_TIMEOUT_MS, () => new SampleNotLoadedError());
  } catch (err) {
    throw err instanceof NotAnImageError ? new SampleNotLoadedError() : err;
  }
}

/** A file's pixels, given up on as a sample's download is: a read the system never completes (a cloud drive's
 * placeholder) left the page "Shrinking the photo…", every control disabled, until a reload. */
function decodeFile(file) {
  return withinTime(decodeBlob(file), REQUEST_TIMEOUT_MS, () => new FileStalledError());
}

/** `promise`, or the error `late()` makes once `ms` have passed without it settling. */
async function withinTime(promise, ms, late) {
  let timer;
  const stalled = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  try {
    return await Promise.race([promise, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/** The upload's pixels: the page's crop and downscale of a decoded image onto a white canvas. Exported so that
 * `python -m bench.jpeg_quality` measures the JPEG quality on the very canvas the page encodes. */
export function drawUpload(source) {
  // An <img> reports its layout size in .width; the pixels are in naturalWidth.
  const { width, height, source: from, cropped } = uploadGeometry(
    source.naturalWidth || source.width,
    source.naturalHeight || source.height,
  );
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  // JPEG has no alpha: a transparent PNG would otherwise turn black where it is see-through.
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(source, from.x, from.y, from.width, from.height, 0, 0, width, height);
  return { canvas, width, height, cropped };
}

async function downscaleToJpeg(source) {
  const { canvas, width, height, cropped } = drawUpload(source);
  if (typeof source.close === "function") source.close();
  let blob = null;
  for (const quality of [JPEG_QUALITY, ...FALLBACK_JPEG_QUALITIES]) {
    blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (!blob) throw new NotAnImageError();
    if (blob.size <= MAX_UPLOAD_BYTES) break;
  }
  return { blob, width, height, cropped };
}

function init() {
  const el = {
    form: document.getElementById("classify-form"),
    fileInput: document.getElementById("file-input"),
    fileChosen: document.getElementById("file-chosen"),
    dropZone: document.getElementById("drop-zone"),
    classifyButton: document.getElementById("classify-button"),
    samples: Array.from(document.querySelectorAll("button.sample")),
    status: document.getElementById("status"),
    statusMessage: document.getElementById("status-message"),
    statusDetail: document.getElementById("status-detail"),
    results: document.getElementById("results"),
    previewImage: document.getElementById("preview-image"),
    previewCaption: document.getElementById("preview-caption"),
    predictions: document.getElementById("predictions"),
    predictionsWrap: document.getElementById("predictions-wrap"),
    timing: document.getElementById("timing"),
    guessNote: document.getElementById("guess-note"),
    pasteKey: document.getElementById("paste-key"),
  };
  const controls = [el.fileInput, el.classifyButton, ...el.samples];
  // The status once the page is ready, and again when the form is back to naming no photo. index.html's own says
  // the page is loading, for as long as this script has not run.
  const idleMessage = "Pick a photo to start.";
  // What the line under the picker says with no photo (index.html): "No photo chosen".
  const noneChosen = el.fileChosen.textContent;
  // The picker's description without that line (index.html): the drop and paste offer, and the file hint.
  const pickerDescription = el.fileInput.getAttribute("aria-describedby");

  let busy = false;
  // What the Classify button re-sends: {name, size (bytes, or null when unknown), decode()}.
  let current = null;
  let previewUrl = null;
  // The file the page itself last put in the picker (putInPicker).
  let placed = null;

  /** Sets what Classify sends, and names it under the picker, as the native control named its file (it is hidden
   * now): the picked file's name, or the dropped or the pasted file's, or the sample's, since Classify sends that.
   * A screen reader hears the picker's own value instead (the file it holds, or the browser's "No file chosen"),
   * which a drop or a paste sets too (putInPicker): the line is hidden from it, not to be said twice, except for a
   * photo the picker cannot hold (a sample, or a drop where `files` cannot be set), when it ends the description. */
  function setCurrent(input) {
    current = input;
    const held = Boolean(input && input.file && el.fileInput.files && el.fileInput.files[0] === input.file);
    if (!input) el.fileChosen.textContent = noneChosen;
    else showFileName(`${input.file ? "Chosen" : "Sample chosen"}: `, input.name);
    const said = Boolean(input) && !held;
    el.fileChosen.setAttribute("aria-hidden", String(!said));
    el.fileInput.setAttribute("aria-describedby", said ? `${pickerDescription} file-chosen` : pickerDescription);
  }

  /** The name under the picker, with a line break allowed between its pieces (style.css's .name-break). */
  function showFileName(prefix, name) {
    const pieces = fileNamePieces(name).flatMap((piece, i) => (i ? [nameBreak(), piece] : [piece]));
    replaceContent(el.fileChosen, prefix, ...pieces);
  }

  function nameBreak() {
    const mark = document.createElement("span");
    mark.className = "name-break";
    return mark;
  }

  /** Puts a dropped or pasted file in the picker, as if it had been picked there: the form, and what a screen reader
   * says of the picker, then name the photo Classify sends. Where the engine cannot (no DataTransfer constructor
   * before Safari 14.1, or a read-only `files`), the picker is emptied as before, not left naming another photo. */
  function putInPicker(file) {
    if (el.fileInput.files && el.fileInput.files[0] === file) return; // picked there, or Classify sending it again
    placed = file;
    try {
      const transfer = new DataTransfer();
      transfer.items.add(file);
      el.fileInput.files = transfer.files;
    } catch {
      // The engine's own picker state stays; it is emptied below.
    }
    if (!el.fileInput.files || el.fileInput.files[0] !== file) el.fileInput.value = "";
  }

  function setStatus(state, message, detail = "") {
    el.status.dataset.state = state;
    el.statusMessage.textContent = keepUnitsWhole(message);
    el.statusDetail.textContent = keepUnitsWhole(detail);
    el.statusDetail.hidden = detail === "";
  }

  function showError(message, requestId = null) {
    setStatus("error", message, requestId ? "Request id (for support): " : "");
    if (requestId) {
      // An element of its own (style.css's .request-id): whole on a line of its own where it fits one.
      const id = document.createElement("span");
      id.className = "request-id";
      id.textContent = requestId;
      el.statusDetail.append(id);
    }
    // On a phone the status region may be a screen away from the button that was tapped.
    el.status.scrollIntoView({ block: "nearest" });
  }

  function setBusy(value) {
    busy = value;
    for (const control of controls) control.disabled = value;
    if (!value) el.classifyButton.disabled = current === null;
    el.form.setAttribute("aria-busy", String(value));
    el.results.setAttribute("aria-busy", String(value));
  }

  let url;
  try {
    url = predictUrl(window.APP_CONFIG);
  } catch (err) {
    // config.js is fetched afresh on each visit (no-store), so on a poor connection it is the file most likely not
    // to come, and then defines nothing: that was told as "The page is not configured", where a reload may bring it.
    // One that came without a usable apiUrl is the deployment's to fix.
    showError(
      window.APP_CONFIG === undefined
        ? "The page could not load its settings (config.js). Reload the page to try again."
        : `The page is not configured: ${err.message}.`,
    );
    for (const control of controls) control.disabled = true;
    // Nothing can be sent, but a photo dropped on the page must not replace it (and this message) in the tab.
    for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
    return;
  }

  function showPreview(blob, width, height, cropped, originalBytes) {
    const original = originalBytes === null ? "" : ` (your file: ${formatBytes(originalBytes)})`;
    const part = cropped ? " (the centre: the model reads only that)" : "";
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(blob);
    el.previewImage.src = previewUrl;
    // Each size kept whole: the centred caption wrapped "78.1" and "KB" onto two lines.
    const caption = `Sent ${width}×${height} JPEG${part}, ${formatBytes(blob.size)}${original}`;
    el.previewCaption.textContent = keepUnitsWhole(caption);
    replaceContent(el.predictions);
    el.predictionsWrap.hidden = true;
    // A hidden heading still names a region: "Top predictions" would lead a screen reader to the photo alone.
    el.results.removeAttribute("aria-labelledby");
    el.timing.textContent = "";
    el.results.hidden = false;
  }

  function renderPredictions(predictions) {
    const items = predictions.map((p) => {
      const pct = formatPercent(p.prob);
      const li = document.createElement("li");
      li.className = "prediction";
      const label = document.createElement("span");
      label.className = "prediction-label";
      label.textContent = p.label;
      const value = document.createElement("span");
      value.className = "prediction-value";
      value.textContent = pct;
      // The label and percentage are text already: a meter would make screen readers say each line twice.
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      fill.style.width = `${Math.min(100, Math.max(0, p.prob * 100))}%`;
      bar.append(fill);
      li.append(label, value, bar);
      return li;
    });
    replaceContent(el.predictions, ...items);
    el.guessNote.hidden = !isGuess(predictions);
    el.predictionsWrap.hidden = false;
    el.results.setAttribute("aria-labelledby", "results-heading");
  }

  async function send(blob) {
    const retriedOnce = new Set();
    for (let attempt = 1; ; attempt += 1) {
      // Short, for the slow answer's hint to follow it within the two lines of a 320 px phone (SLOW_ANSWER_HINT).
      const busyMessage = attempt === 1 ? "Classifying…" : `Try ${attempt} of ${MAX_ATTEMPTS}…`;
      setStatus("busy", busyMessage);
      const slowHint = setTimeout(() => setStatus("busy", busyMessage, SLOW_ANSWER_HINT), SLOW_ANSWER_MS);
      const started = performance.now();
      // Nothing else aborts this request: an aborted signal is the timeout, whatever error the engine gives
      // (an AbortError where the abort reason is not passed on, as in Safari before 15.4).
      const signal = timeoutSignal(REQUEST_TIMEOUT_MS);
      // null: no answer the page may read.
      let response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "image/jpeg", Accept: "application/json" },
        body: blob,
        signal,
      }).catch(() => null);
      clearTimeout(slowHint);
      // The body comes after the status, under the same timeout. A 200 whose body stalled past it, or was cut off
      // (the connection lost mid-answer), is no answer either, not a malformed one: it was told as "the answer has
      // no 'predictions' list". An error's status says enough without its body.
      const text = response === null ? "" : await response.text().catch(() => null);
      if (text === null && response.ok) response = null;
      if (response === null) {
        if (signal.aborted) {
          showError(`The API did not answer within ${REQUEST_TIMEOUT_MS / 1000} s. Please try again.`);
          return;
        }
        // The network failed, or the answer came without CORS headers, which a page cannot tell apart: API
        // Gateway's own 429 (its stage throttling) may, as AWS adds them only to an integration's answers. One
        // more try, as for the other answers that heal by waiting.
        if (attempt < MAX_ATTEMPTS && !retriedOnce.has("unreachable")) {
          retriedOnce.add("unreachable");
          const delay = retryDelayMs(attempt);
          setStatus("retrying", `Could not reach the API, retrying in ${Math.max(1, Math.round(delay / 1000))} s…`);
          await sleep(delay);
          continue;
        }
        showError(`Cannot reach the API at ${new URL(url).origin}. Check your connection and try again.`);
        return;
      }
      // x-request-id and Retry-After are only readable cross-origin if the API exposes them (CORS). API
      // Gateway's own errors (the function crashed, the body is over 10 MB) carry the same id as apigw-requestid.
      const requestId = response.headers.get("x-request-id") || response.headers.get("apigw-requestid");
      const body = parseErrorBody(text ?? "", response.headers.get("content-type"));
      const roundTrip = performance.now() - started;

      if (response.ok) {
        let predictions;
        try {
          predictions = parsePredictions(parseSuccessBody(text, response.headers.get("content-type")));
        } catch (err) {
          showError(`The API sent an answer we could not read: ${err.message}.`, requestId);
          return;
        }
        renderPredictions(predictions);
        el.results.scrollIntoView({ block: "nearest" });
        el.timing.textContent = keepUnitsWhole(describeTiming(roundTrip, body.latency_ms));
        setStatus("done", describeTopPrediction(predictions));
        return;
      }

      const failure = describeFailure(response.status, body);
      if (!failure.retry) {
        showError(failure.message, requestId);
        return;
      }
      if (attempt >= MAX_ATTEMPTS || (failure.once && retriedOnce.has(response.status))) {
        showError(failure.giveUp, requestId);
        return;
      }
      if (failure.once) retriedOnce.add(response.status);
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      const delay = retryDelayMs(attempt, retryAfter);
      if (delay === null) {
        showError(failure.later(retryAfter), requestId);
        return;
      }
      setStatus("retrying", failure.message(Math.max(1, Math.round(delay / 1000))));
      await sleep(delay);
    }
  }

  const fromFile = (file) => ({ name: file.name, size: file.size, file, decode: () => decodeFile(file) });
  const fromSample = (src) => ({ name: src.split("/").pop(), size: null, decode: () => decodeSample(src) });

  /** The sample whose thumbnail was dragged here: a browser drags an image of a page as its address, not a file. */
  function droppedSample(uriList) {
    const dropped = uriList.split(/\r?\n/).find((line) => line.trim() && !line.startsWith("#"));
    if (!dropped) return null;
    const button = el.samples.find((b) => new URL(b.dataset.src, document.baseURI).href === dropped.trim());
    return button ? fromSample(button.dataset.src) : null;
  }

  /** The files of a drop, and how many folders it held besides: a folder comes as a typeless "file" of its own that
   * nothing can read (0 bytes on Windows, told as an empty photo); only its entry says what it is. */
  function droppedFiles(dataTransfer) {
    if (!dataTransfer) return { files: [], folders: 0 };
    if (!dataTransfer.items) return { files: Array.from(dataTransfer.files), folders: 0 };
    const files = [];
    let folders = 0;
    for (const item of Array.from(dataTransfer.items)) {
      if (item.kind !== "file") continue;
      const entry = typeof item.webkitGetAsEntry === "function" ? item.webkitGetAsEntry() : null;
      const file = item.getAsFile();
      if (entry && entry.isDirectory) folders += 1;
      else if (file) files.push(file);
    }
    return { files, folders };
  }

  /** A file the page cannot use: forget it, so Classify cannot re-send an older photo beside the error. */
  function refuse(message) {
    setCurrent(null);
    el.results.hidden = true;
    el.fileInput.value = "";
    showError(message);
  }

  /** A drop or a paste refused as it comes, with no file to read (a folder, a pasted file of another type): the photo
   * it was meant to replace is forgotten as for any refusal, and Classify, which would re-send it, is disabled. */
  function refuseOffered(message) {
    const focused = document.activeElement;
    refuse(message);
    el.classifyButton.disabled = true;
    restoreFocus(focused);
  }

  async function classify(input) {
    if (busy) {
      // Controls are disabled while busy; only a drop or a paste gets here.
      const notice = "Still classifying the previous photo; drop or paste this one again when it is done.";
      // During a retry's wait the line says when the next try is: the notice goes under it, not over it, or the
      // visitor no longer knows why nothing happens for some seconds.
      if (el.status.dataset.state === "retrying") setStatus("retrying", el.statusMessage.textContent, notice);
      // Likewise the slow answer's hint, which says why the wait is long: the notice goes after it.
      else if (el.statusDetail.textContent.startsWith(SLOW_ANSWER_HINT)) {
        setStatus("busy", el.statusMessage.textContent, `${SLOW_ANSWER_HINT} ${notice}`);
      } else setStatus("busy", notice);
      return;
    }
    // A drop or a paste: the form names the file Classify sends, as for a picked one. A sample: the page has its
    // pixels but not its file (the CSP's connect-src allows no fetch of it; a canvas copy would not be that file),
    // so the picker names none rather than go on naming a file that Classify would not send.
    if (input.file) putInPicker(input.file);
    else el.fileInput.value = "";
    // Disabling the focused control drops keyboard focus to <body>; it goes back when the work is done.
    const focused = document.activeElement;
    setBusy(true);
    try {
      if (input.size !== null && input.size > MAX_INPUT_BYTES) {
        const limit = `${MAX_INPUT_BYTES / (1024 * 1024)} MB`;
        refuse(`This file is too big to read here (${formatMegabytesUp(input.size)}; the limit is ${limit}).`);
        return;
      }
      if (input.size === 0) {
        refuse(EMPTY_FILE_MESSAGE);
        return;
      }
      setCurrent(input);
      setStatus("busy", "Shrinking the photo…");
      let shrunk;
      try {
        shrunk = await downscaleToJpeg(await input.decode());
      } catch (err) {
        if (err instanceof TooManyPixelsError) {
          refuse(err.message);
          return;
        }
        if (err instanceof FileUnreadableError) {
          refuse(FILE_CHANGED_MESSAGE);
          return;
        }
        if (err instanceof FileStalledError) {
          refuse(FILE_STALLED_MESSAGE);
          return;
        }
        if (err instanceof SampleNotLoadedError) {
          refuse(SAMPLE_NOT_LOADED_MESSAGE);
          return;
        }
        if (!(err instanceof NotAnImageError)) throw err;
        refuse(cannotDecodeMessage(input.name, input.file ? input.file.type : "", err.head));
        return;
      }
      showPreview(shrunk.blob, shrunk.width, shrunk.height, shrunk.cropped, input.size);
      await send(shrunk.blob);
    } catch (err) {
      showError(`Something went wrong in the page: ${err && err.message ? err.message : err}`);
    } finally {
      setBusy(false);
      restoreFocus(focused);
    }
  }

  function restoreFocus(previous) {
    // A control disabled while busy may still hold focus until the browser's next rendering update (Chromium's
    // focus fixup), when a refusal comes that fast: that focus is lost too, not the user's choice.
    const active = document.activeElement;
    if (active && active !== document.body && !active.disabled) return; // the user moved on
    const target = previous && controls.includes(previous) && !previous.disabled ? previous : el.fileInput;
    // Without preventScroll the browser scrolls the control back into view, undoing the scroll that just
    // brought the results or the error into view.
    if (previous && previous !== document.body) target.focus({ preventScroll: true });
  }

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (current) classify(current);
  });

  // Chromium and Safari fire `cancel`, not `change`, when the dialog answers with the file the picker holds already
  // (whatwg/html#10724; Chromium compares paths): the same photo picked again after an error, or edited and saved
  // under its name, did nothing. Emptied as its dialog opens, the picker fires `change` for any pick; a dismissed
  // dialog (`cancel`) gets the photo put back. Engines without `cancel` on a picker: Chrome before 113 fires `change`
  // with no file for a dismissed dialog, which forgets the photo as a dismissal there always did; Safari before 16.4
  // fires nothing, and its picker then shows no file while the line under it still names the photo Classify sends.
  let heldAsDialogOpened = null;
  el.fileInput.addEventListener("click", () => {
    heldAsDialogOpened = (el.fileInput.files && el.fileInput.files[0]) || null;
    if (heldAsDialogOpened) el.fileInput.value = "";
  });
  el.fileInput.addEventListener("cancel", () => {
    const held = heldAsDialogOpened;
    heldAsDialogOpened = null;
    if (held && !(el.fileInput.files && el.fileInput.files[0])) putInPicker(held);
  });

  el.fileInput.addEventListener("change", () => {
    heldAsDialogOpened = null;
    const file = el.fileInput.files && el.fileInput.files[0];
    // Setting `files` fires no change event in today's Chromium and Firefox, but Chrome and Safari fired one in 2018
    // (w3c/html#1610): the file the page put there itself is being classified already, not to be sent twice.
    if (file && file === placed) return;
    if (file) {
      classify(fromFile(file));
    } else if (!busy) {
      // The picker was emptied (a cancelled dialog does that in some browsers): Classify must not go on
      // sending a photo the form no longer names.
      setCurrent(null);
      el.results.hidden = true;
      el.classifyButton.disabled = true;
      setStatus("idle", idleMessage);
    }
  });

  for (const button of el.samples) {
    button.addEventListener("click", () => classify(fromSample(button.dataset.src)));
  }

  // Drops are taken anywhere on the page: a photo dropped a few pixels off the zone is still meant for us, and
  // without preventDefault the browser would navigate away to it.
  window.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    el.dropZone.classList.remove("dragging");
    const { files, folders } = droppedFiles(event.dataTransfer);
    // Several files (a photo dragged out with its sidecar, say): the first image, as a paste takes it.
    const file = files.find((f) => f.type.startsWith("image/")) || files[0];
    const sample = !file && event.dataTransfer ? droppedSample(event.dataTransfer.getData("text/uri-list")) : null;
    if (file) classify(fromFile(file));
    else if (sample) classify(sample);
    // A folder was dropped to replace the photo, as a file is; a link or text is no file, and leaves the photo be.
    else if (!busy && folders > 0) refuseOffered(FOLDER_DROPPED_MESSAGE);
    else if (!busy) showError(NO_FILE_DROPPED_MESSAGE);
  });
  el.dropZone.addEventListener("dragenter", () => el.dropZone.classList.add("dragging"));
  el.dropZone.addEventListener("dragover", () => el.dropZone.classList.add("dragging"));
  el.dropZone.addEventListener("dragleave", (event) => {
    if (!el.dropZone.contains(event.relatedTarget)) el.dropZone.classList.remove("dragging");
  });

  document.addEventListener("paste", (event) => {
    const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    if (files.length === 0) return; // plain text paste: not ours to handle
    event.preventDefault();
    // A file of no type is one the system's list does not know (HEIC often): it is tried, as a drop tries it.
    const image = files.find((f) => f.type.startsWith("image/")) || files.find((f) => f.type === "");
    if (image) classify(fromFile(image));
    else if (!busy) refuseOffered(NOT_AN_IMAGE_MESSAGE);
  });
  // WebKit (Safari) enables Paste only where something editable has focus, and nothing here is editable: a
  // cancelled beforepaste is how a page says it takes pastes anyway. Other engines send paste regardless and never
  // send this event.
  document.addEventListener("beforepaste", (event) => event.preventDefault());

  // Back from another page, or a phone tab the browser had unloaded, reloads this one and puts the picker's file
  // back (Chromium after load, just before pageshow) without a change event: Classify sends the photo the form
  // names, as it would had the user just picked it.
  window.addEventListener("pageshow", () => {
    const restored = el.fileInput.files && el.fileInput.files[0];
    if (restored && current === null && !busy) {
      setCurrent(fromFile(restored));
      el.classifyButton.disabled = false;
      setStatus("idle", `Press Classify to send ${restored.name}.`);
    }
  });

  el.pasteKey.textContent = pasteModifier(navigator.userAgentData?.platform || navigator.platform);
  // A touch screen hides the drop and paste hint (style.css), but a tablet with a keyboard attached can paste:
  // the first key press (there is no text field, so it comes from a physical keyboard) brings the hint back.
  document.addEventListener("keydown", () => document.documentElement.classList.add("has-keyboard"), {
    once: true,
  });

  // Only now that every control does what it offers (index.html disables them until then).
  setBusy(false);
  setStatus("idle", idleMessage);
  document.documentElement.dataset.ready = "true";
}

init();
