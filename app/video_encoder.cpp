// MP4/H.264 video through libavcodec/libavformat on an encoder thread, and decoding for replays and tests.
#include "app/video_encoder.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/common.h"

#ifdef DC_HAVE_AV
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#endif

namespace dc::app {

game::Image downscale(const game::Image& image, int factor) {
    DC_CHECK(factor >= 1 && image.width % factor == 0 && image.height % factor == 0,
             "downscale: expected a factor dividing " << image.width << "x" << image.height << ", found " << factor);
    if (factor == 1) return image;
    game::Image out;
    out.width = image.width / factor;
    out.height = image.height / factor;
    out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
    const int n = factor * factor;
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x)
            for (int c = 0; c < 3; ++c) {
                int sum = 0;
                for (int dy = 0; dy < factor; ++dy)
                    for (int dx = 0; dx < factor; ++dx)
                        sum +=
                            image.rgb[(static_cast<size_t>(y * factor + dy) * image.width + x * factor + dx) * 3 + c];
                out.rgb[(static_cast<size_t>(y) * out.width + x) * 3 + c] = static_cast<uint8_t>((sum + n / 2) / n);
            }
    return out;
}

#ifdef DC_HAVE_AV

namespace {

std::string av_error(int code) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(code, buf, sizeof(buf));
    return buf;
}

void quiet_av_logs() {
    static std::once_flag once;
    std::call_once(once, [] { av_log_set_level(AV_LOG_FATAL); });  // errors come back as codes and messages
}

// The frame rate as a rational time base (15 Hz -> 1/15).
AVRational time_base_for(double fps) {
    const double r = std::round(fps);
    if (std::abs(fps - r) < 1e-9 && r >= 1) return AVRational{1, static_cast<int>(r)};
    return AVRational{1000, static_cast<int>(std::lround(fps * 1000))};
}

}  // namespace

bool video_encoding_available() {
    return true;
}

std::string video_library_info() {
    quiet_av_logs();
    std::string s = std::string("libavcodec ") + LIBAVCODEC_IDENT + ", libavformat " + LIBAVFORMAT_IDENT;
    s += avcodec_find_encoder_by_name("libx264") ? ", libx264" : ", no libx264";
    return s;
}

struct VideoEncoder::Impl {
    std::string path;
    VideoOptions o;
    int out_w = 0, out_h = 0;
    AVFormatContext* fmt = nullptr;
    AVCodecContext* enc = nullptr;
    AVStream* stream = nullptr;
    SwsContext* sws = nullptr;
    AVFrame* frame = nullptr;
    AVPacket* packet = nullptr;
    int64_t first_frame = -1;
    int64_t last_pts = -1;

    mutable std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::pair<int64_t, game::Image>> queue;
    bool stopping = false, finished = false;
    int64_t dropped = 0, encoded = 0;
    std::string error;
    std::thread thread;

    ~Impl() { close(); }

    void close() {
        if (sws) sws_freeContext(sws);
        sws = nullptr;
        if (frame) av_frame_free(&frame);
        if (packet) av_packet_free(&packet);
        if (enc) avcodec_free_context(&enc);
        if (fmt) {
            if (fmt->pb) avio_closep(&fmt->pb);
            avformat_free_context(fmt);
            fmt = nullptr;
        }
    }

    void set_error(const std::string& e) {
        std::lock_guard<std::mutex> lock(mutex);
        if (error.empty()) error = e;
    }
    bool failed() const {
        std::lock_guard<std::mutex> lock(mutex);
        return !error.empty();
    }

    // Packets out of the encoder into the file. False after an error.
    bool drain() {
        for (;;) {
            int r = avcodec_receive_packet(enc, packet);
            if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return true;
            if (r < 0) {
                set_error("encoding " + path + " failed: " + av_error(r));
                return false;
            }
            av_packet_rescale_ts(packet, enc->time_base, stream->time_base);
            packet->stream_index = stream->index;
            r = av_interleaved_write_frame(fmt, packet);
            av_packet_unref(packet);
            if (r >= 0 && fmt->pb && fmt->pb->error < 0) r = fmt->pb->error;
            if (r < 0) {
                set_error("writing " + path + " failed: " + av_error(r) + " (disk full?)");
                return false;
            }
        }
    }

    bool encode(const game::Image& image, int64_t pts) {
        // Upscale (nearest) in RGB, then convert with accurate rounding.
        const game::Image* src = &image;
        game::Image big;
        if (o.scale > 1) {
            big.width = out_w;
            big.height = out_h;
            big.rgb.resize(static_cast<size_t>(out_w) * out_h * 3);
            for (int y = 0; y < out_h; ++y) {
                const uint8_t* row = &image.rgb[static_cast<size_t>(y / o.scale) * image.width * 3];
                uint8_t* dst = &big.rgb[static_cast<size_t>(y) * out_w * 3];
                for (int x = 0; x < out_w; ++x) std::copy_n(row + (x / o.scale) * 3, 3, dst + x * 3);
            }
            src = &big;
        }
        int r = av_frame_make_writable(frame);
        if (r < 0) {
            set_error("encoding " + path + " failed: " + av_error(r));
            return false;
        }
        const uint8_t* in[1] = {src->rgb.data()};
        const int in_stride[1] = {src->width * 3};
        sws_scale(sws, in, in_stride, 0, src->height, frame->data, frame->linesize);
        frame->pts = pts;
        r = avcodec_send_frame(enc, frame);
        if (r < 0) {
            set_error("encoding " + path + " failed: " + av_error(r));
            return false;
        }
        return drain();
    }

    void flush_and_close() {
        if (enc && !failed()) {
            if (avcodec_send_frame(enc, nullptr) >= 0) drain();
        }
        if (fmt && fmt->pb) {
            const int r = av_write_trailer(fmt);
            if (r < 0 && !failed()) set_error("writing " + path + " failed: " + av_error(r) + " (disk full?)");
            avio_flush(fmt->pb);
            if (fmt->pb->error < 0 && !failed())
                set_error("writing " + path + " failed: " + av_error(fmt->pb->error) + " (disk full?)");
        }
        close();
    }

    void worker() {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
            cv.wait(lock, [&] { return stopping || !queue.empty(); });
            if (queue.empty() && stopping) break;
            auto item = std::move(queue.front());
            queue.pop_front();
            const bool ok = error.empty();
            lock.unlock();
            bool done = false;
            if (ok) {
                if (first_frame < 0) first_frame = item.first;
                const int64_t pts = item.first - first_frame;
                if (pts > last_pts) {
                    done = encode(item.second, pts);
                    if (done) last_pts = pts;
                }
            }
            lock.lock();
            if (done)
                ++encoded;
            else
                ++dropped;
            cv.notify_all();
        }
        lock.unlock();
        flush_and_close();
    }
};

VideoEncoder::VideoEncoder(const std::string& path, const VideoOptions& options) : m_impl(std::make_unique<Impl>()) {
    quiet_av_logs();
    Impl& m = *m_impl;
    m.path = path;
    m.o = options;
    DC_CHECK(options.width > 0 && options.height > 0,
             "video " << path << ": expected a frame size, found " << options.width << "x" << options.height);
    DC_CHECK(options.scale >= 1 && options.scale <= 16,
             "video " << path << ": expected a scale from 1 to 16, found " << options.scale);
    DC_CHECK(options.fps > 0, "video " << path << ": expected a positive frame rate, found " << options.fps);
    DC_CHECK(options.queue_frames >= 1, "video " << path << ": expected a queue of at least 1 frame");
    m.out_w = options.width * options.scale;
    m.out_h = options.height * options.scale;
    DC_CHECK(options.lossless || (m.out_w % 2 == 0 && m.out_h % 2 == 0),
             "video " << path << ": yuv420p needs even sizes, found " << m.out_w << "x" << m.out_h);
    const char* encoder_name = options.lossless ? "libx264rgb" : "libx264";
    const AVCodec* codec = avcodec_find_encoder_by_name(encoder_name);
    DC_CHECK(codec, "video " << path << ": this libavcodec has no " << encoder_name
                             << " encoder (Debian's libavcodec59 has it; " << video_library_info() << ")");
    int r = avformat_alloc_output_context2(&m.fmt, nullptr, "mp4", path.c_str());
    DC_CHECK(r >= 0 && m.fmt, "video " << path << ": cannot set up an MP4 file: " << av_error(r));
    m.stream = avformat_new_stream(m.fmt, nullptr);
    m.enc = avcodec_alloc_context3(codec);
    m.frame = av_frame_alloc();
    m.packet = av_packet_alloc();
    DC_CHECK(m.stream && m.enc && m.frame && m.packet, "video " << path << ": out of memory setting up the encoder");
    const AVPixelFormat pix = options.lossless ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUV420P;
    m.enc->width = m.out_w;
    m.enc->height = m.out_h;
    m.enc->pix_fmt = pix;
    m.enc->time_base = time_base_for(options.fps);
    m.enc->framerate = av_inv_q(m.enc->time_base);
    m.enc->gop_size = std::max(1, options.keyframe_interval);
    m.enc->max_b_frames = 0;
    m.enc->thread_count = 1;  // 128x128 is tiny; one thread leaves the cores to the game and the model
    if (m.fmt->oformat->flags & AVFMT_GLOBALHEADER) m.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* eopts = nullptr;
    av_dict_set(&eopts, "preset", "veryfast", 0);
    av_dict_set(&eopts, "tune", "zerolatency", 0);
    if (options.lossless)
        av_dict_set(&eopts, "qp", "0", 0);
    else
        av_dict_set(&eopts, "crf", std::to_string(options.crf).c_str(), 0);
    r = avcodec_open2(m.enc, codec, &eopts);
    av_dict_free(&eopts);
    DC_CHECK(r >= 0, "video " << path << ": cannot open the " << encoder_name << " encoder: " << av_error(r));
    r = avcodec_parameters_from_context(m.stream->codecpar, m.enc);
    DC_CHECK(r >= 0, "video " << path << ": " << av_error(r));
    m.stream->time_base = m.enc->time_base;
    m.stream->avg_frame_rate = m.enc->framerate;
    m.frame->format = pix;
    m.frame->width = m.out_w;
    m.frame->height = m.out_h;
    r = av_frame_get_buffer(m.frame, 0);
    DC_CHECK(r >= 0, "video " << path << ": " << av_error(r));
    m.sws = sws_getContext(m.out_w, m.out_h, AV_PIX_FMT_RGB24, m.out_w, m.out_h, pix,
                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
    DC_CHECK(m.sws, "video " << path << ": swscale cannot convert rgb24 to the encoder's format");
    r = avio_open(&m.fmt->pb, path.c_str(), AVIO_FLAG_WRITE);
    DC_CHECK(r >= 0, "video: cannot create " << path << ": " << av_error(r));
    AVDictionary* mopts = nullptr;
    // Fragmented MP4: a file cut off by a crash or a full disk still decodes up to its last fragment.
    av_dict_set(&mopts, "movflags", "frag_keyframe+empty_moov+default_base_moof", 0);
    av_dict_set(&mopts, "flush_packets", "1", 0);
    r = avformat_write_header(m.fmt, &mopts);
    av_dict_free(&mopts);
    DC_CHECK(r >= 0, "video: cannot write the header of " << path << ": " << av_error(r) << " (disk full?)");
    m.thread = std::thread([this] { m_impl->worker(); });
}

VideoEncoder::~VideoEncoder() {
    if (m_impl) finish();
}

bool VideoEncoder::push(const game::Image& frame, int64_t frame_number, bool wait) {
    Impl& m = *m_impl;
    std::unique_lock<std::mutex> lock(m.mutex);
    if (wait)
        m.cv.wait(lock, [&] {
            return m.stopping || !m.error.empty() || static_cast<int>(m.queue.size()) < m.o.queue_frames;
        });
    const bool fits = frame.width == m.o.width && frame.height == m.o.height &&
                      frame.rgb.size() == static_cast<size_t>(frame.width) * frame.height * 3;
    if (m.stopping || !m.error.empty() || !fits || static_cast<int>(m.queue.size()) >= m.o.queue_frames) {
        ++m.dropped;
        return false;
    }
    m.queue.emplace_back(frame_number, frame);
    m.cv.notify_all();
    return true;
}

std::string VideoEncoder::finish() {
    Impl& m = *m_impl;
    {
        std::lock_guard<std::mutex> lock(m.mutex);
        if (m.finished) return m.error;
        m.stopping = true;
        m.finished = true;
    }
    m.cv.notify_all();
    if (m.thread.joinable()) m.thread.join();
    return error();
}

int64_t VideoEncoder::dropped() const {
    std::lock_guard<std::mutex> lock(m_impl->mutex);
    return m_impl->dropped;
}
int64_t VideoEncoder::encoded() const {
    std::lock_guard<std::mutex> lock(m_impl->mutex);
    return m_impl->encoded;
}
int64_t VideoEncoder::queued() const {
    std::lock_guard<std::mutex> lock(m_impl->mutex);
    return static_cast<int64_t>(m_impl->queue.size());
}
std::string VideoEncoder::error() const {
    std::lock_guard<std::mutex> lock(m_impl->mutex);
    return m_impl->error;
}
const VideoOptions& VideoEncoder::options() const {
    return m_impl->o;
}
std::string VideoEncoder::codec() const {
    const VideoOptions& o = m_impl->o;
    if (o.lossless) return "h264 rgb24 lossless (libx264rgb qp 0)";
    return "h264 yuv420p crf " + std::to_string(o.crf) + " (libx264)";
}

DecodedVideo decode_video(const std::string& path) {
    quiet_av_logs();
    DecodedVideo out;
    AVFormatContext* fmt = nullptr;
    int r = avformat_open_input(&fmt, path.c_str(), nullptr, nullptr);
    DC_CHECK(r >= 0, "cannot open the video " << path << ": " << av_error(r));
    struct Guard {
        AVFormatContext** fmt;
        AVCodecContext* dec = nullptr;
        AVFrame* frame = nullptr;
        AVPacket* packet = nullptr;
        SwsContext* sws = nullptr;
        ~Guard() {
            if (sws) sws_freeContext(sws);
            if (frame) av_frame_free(&frame);
            if (packet) av_packet_free(&packet);
            if (dec) avcodec_free_context(&dec);
            avformat_close_input(fmt);
        }
    } g{&fmt};
    r = avformat_find_stream_info(fmt, nullptr);
    DC_CHECK(r >= 0, "the video " << path << " has no readable stream information: " << av_error(r));
    const AVCodec* codec = nullptr;
    const int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    DC_CHECK(si >= 0 && codec, "the file " << path << " has no video stream this libavcodec can decode");
    AVStream* st = fmt->streams[si];
    g.dec = avcodec_alloc_context3(codec);
    DC_CHECK(g.dec, "out of memory decoding " << path);
    avcodec_parameters_to_context(g.dec, st->codecpar);
    g.dec->thread_count = 1;
    r = avcodec_open2(g.dec, codec, nullptr);
    DC_CHECK(r >= 0, "cannot open the decoder for " << path << ": " << av_error(r));
    g.frame = av_frame_alloc();
    g.packet = av_packet_alloc();
    out.width = g.dec->width;
    out.height = g.dec->height;
    const AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    out.fps = rate.den > 0 ? av_q2d(rate) : 0;
    const AVRational frame_tb = out.fps > 0 ? av_inv_q(rate) : st->time_base;

    auto take = [&]() -> bool {
        for (;;) {
            const int rr = avcodec_receive_frame(g.dec, g.frame);
            if (rr == AVERROR(EAGAIN) || rr == AVERROR_EOF) return true;
            if (rr < 0) {
                out.note = "decoding stopped: " + av_error(rr);
                return false;
            }
            game::Image img;
            img.width = g.frame->width;
            img.height = g.frame->height;
            img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
            g.sws = sws_getCachedContext(
                g.sws, img.width, img.height, static_cast<AVPixelFormat>(g.frame->format), img.width, img.height,
                AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr);
            DC_CHECK(g.sws, "cannot convert the frames of " << path << " to RGB");
            uint8_t* dst[1] = {img.rgb.data()};
            const int dst_stride[1] = {img.width * 3};
            sws_scale(g.sws, g.frame->data, g.frame->linesize, 0, img.height, dst, dst_stride);
            int64_t ts = g.frame->best_effort_timestamp;
            if (ts == AV_NOPTS_VALUE) ts = g.frame->pts;
            const int64_t n = ts == AV_NOPTS_VALUE ? (out.frames.empty() ? 0 : out.frames.back().first + 1)
                                                   : av_rescale_q(ts, st->time_base, frame_tb);
            out.frames.emplace_back(n, std::move(img));
            av_frame_unref(g.frame);
        }
    };
    bool ok = true;
    while (ok) {
        r = av_read_frame(fmt, g.packet);
        if (r == AVERROR_EOF) break;
        if (r < 0) {
            out.note = "reading stopped: " + av_error(r) + " (a cut-off file?)";
            break;
        }
        if (g.packet->stream_index == si) {
            const int s = avcodec_send_packet(g.dec, g.packet);
            if (s < 0 && s != AVERROR(EAGAIN)) out.note = "a damaged packet was skipped: " + av_error(s);
        }
        av_packet_unref(g.packet);
        ok = take();
    }
    if (ok) {
        avcodec_send_packet(g.dec, nullptr);
        take();
    }
    return out;
}

#else  // no libav in this build

bool video_encoding_available() {
    return false;
}
std::string video_library_info() {
    return "none (built without libavcodec/libavformat)";
}

struct VideoEncoder::Impl {
    VideoOptions o;
};

VideoEncoder::VideoEncoder(const std::string& path, const VideoOptions&) {
    DC_FAIL("cannot write " << path
                            << ": this build has no video encoder (install libavcodec-dev libavformat-dev "
                               "libswscale-dev libavutil-dev and rebuild)");
}
VideoEncoder::~VideoEncoder() = default;
bool VideoEncoder::push(const game::Image&, int64_t, bool) {
    return false;
}
std::string VideoEncoder::finish() {
    return "";
}
int64_t VideoEncoder::dropped() const {
    return 0;
}
int64_t VideoEncoder::encoded() const {
    return 0;
}
int64_t VideoEncoder::queued() const {
    return 0;
}
std::string VideoEncoder::error() const {
    return "";
}
const VideoOptions& VideoEncoder::options() const {
    return m_impl->o;
}
std::string VideoEncoder::codec() const {
    return "none";
}

DecodedVideo decode_video(const std::string& path) {
    DC_FAIL("cannot read " << path << ": this build has no video decoder (built without libavcodec/libavformat)");
}

#endif

}  // namespace dc::app
