package securechat

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// A phone's JPEG carries more than the picture: EXIF with the GPS position where it was
// taken, the time, the phone's make and serial number; XMP and IPTC blocks that may repeat
// them; and, after the picture, further images (depth maps, gain maps: MPF) with their own
// EXIF. stripJPEGMetadata keeps the picture, its colour profile and its orientation, and
// drops the rest, before a patient's photo is stored or reaches staff.

var (
	exifHeader = []byte("Exif\x00\x00")
	iccHeader  = []byte("ICC_PROFILE\x00")

	errNotJPEG = errors.New("not a well-formed JPEG")
)

const (
	markerSOI   = 0xD8
	markerEOI   = 0xD9
	markerSOS   = 0xDA
	markerAPP0  = 0xE0
	markerAPP1  = 0xE1
	markerAPP2  = 0xE2
	markerAPP15 = 0xEF
	markerCOM   = 0xFE
	tagOrient   = 0x0112
)

// jpegSegment is one marker segment: its marker and payload (after the length).
type jpegSegment struct {
	marker  byte
	payload []byte
}

// walkJPEG calls fn for each segment before the first scan and returns where the scan
// starts (at its SOS marker). Standalone markers have no payload.
func walkJPEG(data []byte, fn func(seg jpegSegment)) (int, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != markerSOI {
		return 0, errNotJPEG
	}
	i := 2
	for {
		for i < len(data) && data[i] == 0xFF && i+1 < len(data) && data[i+1] == 0xFF {
			i++ // fill bytes
		}
		if i+4 > len(data) || data[i] != 0xFF {
			return 0, errNotJPEG
		}
		marker := data[i+1]
		if marker == markerSOS {
			return i, nil
		}
		if marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7) {
			i += 2
			continue
		}
		if marker == markerEOI {
			return 0, errNotJPEG
		}
		length := int(binary.BigEndian.Uint16(data[i+2 : i+4]))
		if length < 2 || i+2+length > len(data) {
			return 0, errNotJPEG
		}
		fn(jpegSegment{marker: marker, payload: data[i+4 : i+2+length]})
		i += 2 + length
	}
}

// jpegOrientation is the EXIF orientation (1-8) of a JPEG, 1 when it has none.
func jpegOrientation(data []byte) int {
	orientation := 1
	_, _ = walkJPEG(data, func(seg jpegSegment) {
		if seg.marker == markerAPP1 && bytes.HasPrefix(seg.payload, exifHeader) {
			if o := exifOrientation(seg.payload[len(exifHeader):]); o != 0 {
				orientation = o
			}
		}
	})
	return orientation
}

// exifOrientation reads the orientation tag of IFD0 in a TIFF structure; 0 if absent.
func exifOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return 0
	}
	var order binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 0
	}
	ifd := int(order.Uint32(tiff[4:8]))
	if ifd < 8 || ifd+2 > len(tiff) {
		return 0
	}
	count := int(order.Uint16(tiff[ifd:]))
	for n := range count {
		entry := ifd + 2 + 12*n
		if entry+12 > len(tiff) {
			return 0
		}
		if order.Uint16(tiff[entry:]) == tagOrient && order.Uint16(tiff[entry+2:]) == 3 {
			if o := int(order.Uint16(tiff[entry+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 0
		}
	}
	return 0
}

// orientationEXIF is an APP1 payload holding only an orientation tag.
func orientationEXIF(o int) []byte {
	out := append([]byte(nil), exifHeader...)
	out = append(out, 'M', 'M', 0, 42, 0, 0, 0, 8) // big-endian TIFF, IFD0 at 8
	out = append(out, 0, 1)                        // one entry
	out = append(out, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0)
	return append(out, 0, 0, 0, 0) // no next IFD
}

// stripJPEGMetadata returns the JPEG without its metadata: EXIF is replaced by one holding
// only the orientation (without it, a phone's upright photo shows on its side), and XMP,
// IPTC/Photoshop blocks, comments, MPF and anything after the picture's end are removed.
// JFIF, the colour profile (ICC) and Adobe's colour transform are kept.
func stripJPEGMetadata(data []byte) ([]byte, error) {
	out := make([]byte, 0, len(data))
	out = append(out, 0xFF, markerSOI)
	orientation := 1
	var segments []jpegSegment
	scan, err := walkJPEG(data, func(seg jpegSegment) {
		switch {
		case seg.marker == markerAPP1 && bytes.HasPrefix(seg.payload, exifHeader):
			if o := exifOrientation(seg.payload[len(exifHeader):]); o != 0 {
				orientation = o
			}
		case seg.marker == markerAPP2 && bytes.HasPrefix(seg.payload, iccHeader),
			seg.marker == markerAPP0, seg.marker == 0xEE: // JFIF, ICC, Adobe (APP14)
			segments = append(segments, seg)
		case seg.marker >= markerAPP0 && seg.marker <= markerAPP15, seg.marker == markerCOM:
			// XMP, IPTC, MPF, maker blocks, comments: dropped
		default:
			segments = append(segments, seg) // tables, frame header
		}
	})
	if err != nil {
		return nil, err
	}
	// JFIF first if present, then the orientation, then the rest in order.
	wrote := false
	writeSeg := func(marker byte, payload []byte) {
		out = append(out, 0xFF, marker, byte((len(payload)+2)>>8), byte(len(payload)+2))
		out = append(out, payload...)
	}
	for _, seg := range segments {
		if !wrote && seg.marker != markerAPP0 {
			if orientation != 1 {
				writeSeg(markerAPP1, orientationEXIF(orientation))
			}
			wrote = true
		}
		writeSeg(seg.marker, seg.payload)
	}
	end, err := jpegEnd(data, scan)
	if err != nil {
		return nil, err
	}
	return append(out, data[scan:end]...), nil
}

// jpegEnd finds the end of the picture (after its EOI marker), from its first scan: the
// scans' entropy-coded data escape 0xFF as FF00 and use FFD0-FFD7 as restart markers;
// between progressive scans come table segments, which are walked over.
func jpegEnd(data []byte, i int) (int, error) {
	for i+1 < len(data) {
		if data[i] != 0xFF {
			i++
			continue
		}
		marker := data[i+1]
		switch {
		case marker == 0x00 || marker == 0xFF || (marker >= 0xD0 && marker <= 0xD7):
			i++
			if marker != 0xFF {
				i++
			}
		case marker == markerEOI:
			return i + 2, nil
		default: // SOS, DHT, DQT, DRI, … between scans: skip the segment's header
			if i+4 > len(data) {
				return 0, errNotJPEG
			}
			length := int(binary.BigEndian.Uint16(data[i+2 : i+4]))
			if length < 2 || i+2+length > len(data) {
				return 0, errNotJPEG
			}
			i += 2 + length
		}
	}
	return 0, errNotJPEG
}
