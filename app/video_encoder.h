// app/video_encoder.h — MP4 video of played frames, encoded on its own thread (libavcodec/libavformat); read back.
//
//   dc::app::VideoOptions vo;  vo.width = 128;  vo.height = 128;  vo.fps = 15;
//   dc::app::VideoEncoder video("rec/video.mp4", vo);    // throws dc::Error (no libav in this build, cannot create)
//   each frame:  if (!video.push(frame, n)) ...;         // never blocks: a full queue drops the frame (counted)
//   if (!video.error().empty()) ...                      // the first write error (disk full): encoding stopped
//   video.finish();                                      // drains the queue, closes the file
//
//   dc::app::DecodedVideo d = dc::app::decode_video("rec/video.mp4");   // every frame with its frame number
//
// Format: H.264 in a fragmented MP4 (a fragment per keyframe, one keyframe a second), so a file cut off by a crash or
// a full disk still plays and decodes up to its last complete fragment. Default: yuv420p (plays everywhere), near-
// lossless (CRF 14), zero-latency x264 (no B-frames: packets leave the encoder with their frame). Lossless mode uses
// libx264rgb at QP 0: the decoded RGB frames are bit-identical to the pushed ones (bigger files, fewer players).
// Frames may be upscaled by a whole factor (nearest neighbour). Time stamps are frame numbers (relative to the
// first frame number pushed) at `fps`, so dropped frames leave gaps the reader sees.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "game/game.h"

namespace dc::app {

struct VideoOptions {
    int width = 128;  // frame size pushed (RGB8); encoded size is width*scale x height*scale
    int height = 128;
    int scale = 1;               // nearest-neighbour upscale factor (1..16); 1 = the game's native pixels
    double fps = 15;             // frame rate: the game's tick rate, so one video frame = one game tick
    bool lossless = false;       // libx264rgb QP 0 (bit-exact RGB) instead of yuv420p CRF `crf`
    int crf = 14;                // x264 quality for yuv420p; 14 = near-lossless at 128x128 for a few kB a frame
    int queue_frames = 64;       // frames waiting for the encoder (~4 s at 15 Hz); a push beyond it is dropped
    int keyframe_interval = 15;  // frames per GOP/fragment; a cut-off file loses at most this many
};

// True when this build links libavcodec/libavformat (DC_HAVE_AV).
bool video_encoding_available();
// One line for session.json and logs: "libavcodec 59.37.100, libx264" or why there is none.
std::string video_library_info();

class VideoEncoder {
public:
    // Opens the file and the encoder; throws dc::Error saying why it cannot (no libav, no libx264, cannot create).
    VideoEncoder(const std::string& path, const VideoOptions& options);
    ~VideoEncoder();  // finish()
    VideoEncoder(const VideoEncoder&) = delete;
    VideoEncoder& operator=(const VideoEncoder&) = delete;

    // Queues a copy of the frame. False when it was dropped: the queue was full (the encoder fell behind), the size
    // differs from the options, or encoding stopped after an error. Drops are counted. Never blocks unless `wait`:
    // then a full queue makes it wait for room (headless runs, where no display must be kept going, drop nothing).
    bool push(const game::Image& frame, int64_t frame_number, bool wait = false);
    // Drains the queue, flushes the encoder and closes the file (idempotent). Returns error() afterwards.
    std::string finish();

    int64_t dropped() const;    // frames not encoded (queue full, wrong size, after an error)
    int64_t encoded() const;    // frames written
    int64_t queued() const;     // frames waiting now
    std::string error() const;  // "" while fine; the first error (e.g. "writing rec/video.mp4 failed: File too large")
    const VideoOptions& options() const;
    std::string codec() const;  // "h264 yuv420p crf 14" / "h264 rgb24 lossless (libx264rgb qp 0)"

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

struct DecodedVideo {
    int width = 0, height = 0;  // encoded size (native size x scale)
    double fps = 0;
    // Each decoded frame with its frame number (relative to the first frame pushed), in order; RGB8.
    std::vector<std::pair<int64_t, game::Image>> frames;
    std::string note;  // "" or why decoding stopped early (a cut-off file)
};
// Decodes a whole file. Throws dc::Error naming the file when it cannot be opened or has no video stream; a file cut
// off mid-way gives the frames before the cut and a note.
DecodedVideo decode_video(const std::string& path);

// Box-filters an image down by a whole factor (to compare an upscaled video frame with a native frame).
game::Image downscale(const game::Image& image, int factor);

}  // namespace dc::app
