package securechat

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

const (
	// thumbMaxSide is the longest side of a photo's preview: sharp at the chat's width on
	// a phone's 2x screen, and tens of kilobytes where the original is megabytes.
	thumbMaxSide = 640
	// thumbQuality is the preview's JPEG quality.
	thumbQuality = 72
	// thumbSkipBytes: a photo no larger than the preview and this light is shown as it is.
	thumbSkipBytes = 150 << 10
	// maxPhotoPixels bounds what is decoded for a preview (a 4032×3024 phone photo is 12 MP);
	// a larger image (or a decompression bomb) gets no preview and is offered as a file.
	maxPhotoPixels = 50_000_000
)

// thumbPart is the additional-data part a photo's preview is sealed with.
const thumbPart = "thumb"

// photoPreview is what the chat page shows of a photo: a smaller JPEG (nil when the
// original is small enough to show itself) and the size it is shown at.
type photoPreview struct {
	Thumb         []byte
	Width, Height int
}

// inlinePhotoTypes are the photo types every phone's browser shows; the others (HEIC,
// which only Safari renders) are offered as files.
var inlinePhotoTypes = map[string]bool{
	"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true,
}

// decodeConfig reads a photo's size and format without decoding its pixels.
func decodeConfig(contentType string, data []byte) (image.Config, bool) {
	var cfg image.Config
	var err error
	switch contentType {
	case "image/jpeg":
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	case "image/png":
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	case "image/gif":
		cfg, err = gif.DecodeConfig(bytes.NewReader(data))
	case "image/webp":
		cfg, err = webp.DecodeConfig(bytes.NewReader(data))
	default:
		return cfg, false
	}
	return cfg, err == nil && cfg.Width > 0 && cfg.Height > 0
}

func decodePhoto(contentType string, data []byte) (image.Image, error) {
	switch contentType {
	case "image/jpeg":
		return jpeg.Decode(bytes.NewReader(data))
	case "image/png":
		return png.Decode(bytes.NewReader(data))
	case "image/gif":
		return gif.Decode(bytes.NewReader(data)) // the first frame
	default:
		return webp.Decode(bytes.NewReader(data))
	}
}

// makePreview builds a photo's preview, turned upright as its EXIF orientation says
// (browsers turn the original themselves). ok is false for what the page cannot show
// inline: HEIC, an image too large to decode, or bytes that do not decode.
func makePreview(contentType string, data []byte) (preview photoPreview, ok bool) {
	if !inlinePhotoTypes[contentType] {
		return preview, false
	}
	cfg, ok := decodeConfig(contentType, data)
	if !ok || cfg.Width*cfg.Height > maxPhotoPixels {
		return preview, false
	}
	orientation := 1
	if contentType == "image/jpeg" {
		orientation = jpegOrientation(data)
	}
	width, height := cfg.Width, cfg.Height
	if orientation >= 5 {
		width, height = height, width
	}
	if width <= thumbMaxSide && height <= thumbMaxSide && len(data) <= thumbSkipBytes && orientation == 1 {
		return photoPreview{Width: width, Height: height}, true
	}
	src, err := decodePhoto(contentType, data)
	if err != nil {
		return preview, false
	}
	b := src.Bounds()
	w, h := fitWithin(b.Dx(), b.Dy(), thumbMaxSide)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// Transparent photos (PNG, WebP, GIF) go on white, as the page shows them.
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
	upright := orient(dst, orientation)
	var buf bytes.Buffer
	if err = jpeg.Encode(&buf, upright, &jpeg.Options{Quality: thumbQuality}); err != nil {
		return preview, false
	}
	return photoPreview{Thumb: buf.Bytes(), Width: upright.Bounds().Dx(), Height: upright.Bounds().Dy()}, true
}

// fitWithin scales w×h down to fit a max×max square, keeping its proportions.
func fitWithin(w, h, maxSide int) (int, int) {
	if w <= maxSide && h <= maxSide {
		return w, h
	}
	if w >= h {
		return maxSide, max(1, (h*maxSide+w/2)/w)
	}
	return max(1, (w*maxSide+h/2)/h), maxSide
}

// orient turns an image as EXIF orientation o (1-8) says it must be shown.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return src
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2: // mirrored
				dx, dy = w-1-x, y
			case 3: // upside down
				dx, dy = w-1-x, h-1-y
			case 4: // upside down, mirrored
				dx, dy = x, h-1-y
			case 5: // transposed
				dx, dy = y, x
			case 6: // turned a quarter clockwise to be shown
				dx, dy = h-1-y, x
			case 7: // transversed
				dx, dy = h-1-y, w-1-x
			case 8: // turned a quarter anticlockwise to be shown
				dx, dy = y, w-1-x
			}
			si := src.PixOffset(b.Min.X+x, b.Min.Y+y)
			di := dst.PixOffset(dx, dy)
			copy(dst.Pix[di:di+4], src.Pix[si:si+4])
		}
	}
	return dst
}
