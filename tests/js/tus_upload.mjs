// Upload a file to MOSAIC with tus-js-client under Node, as a script or a browser app would.
//
//   node tus_upload.mjs '<json options>'
//
// Options: endpoint, token, path, metadata ({study, sample_id, filename, ...}), chunkSize,
// uploadUrl (start from an upload that exists, as a client that stored its URL does) and
// abortAfterChunks: stop the first upload after that many chunks, then resume it from its URL
// with a new Upload object (what a client does after a crash). Prints one JSON line: the upload
// URL, the offset the server reported when resuming, the Upload-File-Id of the last PATCH and
// every request seen ([method, status]).
import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const options = JSON.parse(process.argv[2]);
const data = readFileSync(options.path);
const requests = [];
let fileId = null;
let resumedFrom = null;

function run(extra) {
  return new Promise((resolve, reject) => {
    let chunks = 0;
    const upload = new tus.Upload(data, {
      endpoint: options.endpoint,
      chunkSize: options.chunkSize,
      metadata: options.metadata,
      headers: { Authorization: `Bearer ${options.token}` },
      retryDelays: null,
      removeFingerprintOnSuccess: true,
      onAfterResponse: (request, response) => {
        const method = request.getMethod();
        requests.push([method, response.getStatus()]);
        if (method === "HEAD") resumedFrom = Number(response.getHeader("Upload-Offset"));
        const id = response.getHeader("Upload-File-Id");
        if (id) fileId = id;
      },
      onChunkComplete: () => {
        chunks += 1;
        if (extra.abortAfterChunks && chunks === extra.abortAfterChunks) {
          upload.abort().then(() => resolve({ url: upload.url, aborted: true }), reject);
        }
      },
      onSuccess: () => resolve({ url: upload.url, aborted: false }),
      onError: reject,
      ...extra.tus,
    });
    upload.start();
  });
}

try {
  const first = await run({
    abortAfterChunks: options.abortAfterChunks,
    tus: options.uploadUrl ? { uploadUrl: options.uploadUrl } : {},
  });
  let last = first;
  if (first.aborted) {
    last = await run({ tus: { uploadUrl: first.url } });
  }
  console.log(
    JSON.stringify({
      url: last.url,
      firstUrl: first.url,
      aborted: first.aborted,
      resumedFrom,
      fileId,
      requests,
    }),
  );
} catch (error) {
  console.log(JSON.stringify({ error: String(error), requests }));
  process.exit(1);
}
