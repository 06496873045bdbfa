// The public exports of render: pixels in, grids and upload-ready PNG/WebP/JPEG files out.

export { RGB_CHANNELS, type Rgb, type RgbImage } from './image.js';
export {
  composeGrid,
  gridLayout,
  cellOrigin,
  defaultGutter,
  GRID_BACKGROUND,
  GRID_TARGET_ASPECT,
  MAX_GRID_IMAGES,
  type GridLayout,
  type GridLayoutOptions,
  type GridOptions,
} from './grid.js';
export {
  encodePng,
  encodeForUpload,
  decodeImage,
  OverBudgetError,
  IMAGE_FORMATS,
  LOSSY_STEPS,
  MIN_DOWNSCALE_SIDE,
  type EncodedImage,
  type EncodeForUploadOptions,
  type ImageContentType,
  type ImageExtension,
  type ImageFormat,
  type LossyStep,
} from './encode.js';
export { imageFileName } from './file-name.js';
export { placeholderTile, PLACEHOLDER_LABEL, PLACEHOLDER_BACKGROUND, PLACEHOLDER_INK } from './placeholder.js';
