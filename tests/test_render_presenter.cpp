// The presenter: layout math, PNG writing, and (with a display) nearest upscaling read back from the window.
#include <catch2/catch.hpp>
#include <stb_image.h>

#include <filesystem>
#include <vector>

#include "render/render.h"

using dc::render::Rect;

TEST_CASE("fit_rect keeps the aspect ratio and uses whole-number scales for crisp upscaling", "[render]") {
    Rect r = dc::render::fit_rect(128, 128, Rect{0, 0, 640, 640}, true);
    CHECK((r.x == 0 && r.y == 0 && r.w == 640 && r.h == 640));
    r = dc::render::fit_rect(128, 128, Rect{0, 0, 700, 500}, true);   // 3.9x fits: 3x, centred
    CHECK((r.w == 384 && r.h == 384 && r.x == 158 && r.y == 58));
    r = dc::render::fit_rect(128, 128, Rect{10, 0, 700, 500}, false);   // smooth: fill the height
    CHECK((r.w == 500 && r.h == 500 && r.x == 10 + 100 && r.y == 0));
    r = dc::render::fit_rect(256, 128, Rect{0, 0, 100, 100}, true);   // smaller than the source: fractional
    CHECK((r.w == 100 && r.h == 50 && r.y == 25));
    r = dc::render::fit_rect(128, 128, Rect{0, 0, 0, 100}, true);
    CHECK(r.w == 0);
}

TEST_CASE("write_png writes a PNG that reads back to the same pixels and names a bad path", "[render]") {
    std::vector<uint8_t> rgb(5 * 3 * 3);
    for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 17);
    const auto path = (std::filesystem::temp_directory_path() / "dc_render_png_test.png").string();
    dc::render::write_png(path, rgb.data(), 5, 3, 3);
    int w = 0, h = 0, n = 0;
    uint8_t* px = stbi_load(path.c_str(), &w, &h, &n, 3);
    REQUIRE(px);
    CHECK((w == 5 && h == 3));
    CHECK(std::vector<uint8_t>(px, px + rgb.size()) == rgb);
    stbi_image_free(px);
    std::filesystem::remove(path);
    CHECK_THROWS_WITH(dc::render::write_png("/nonexistent/dir/x.png", rgb.data(), 5, 3, 3),
                      Catch::Contains("/nonexistent/dir/x.png"));
}

TEST_CASE("the presenter upscales a frame pixel-exact with nearest sampling and blends with smooth", "[render][gui]") {
    if (!dc::render::display_available()) FAIL("needs a display: run under xvfb-run -a");
    dc::render::PresenterConfig config;
    config.width = 200;
    config.height = 120;
    config.visible = false;
    dc::render::Presenter presenter(config);
    INFO(presenter.gl_info());
    // A 4x4 checker of distinct colours, drawn 3x at (10, 20).
    const int n = 4, s = 3;
    std::vector<uint8_t> img(n * n * 3);
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {
            uint8_t* p = &img[(y * n + x) * 3];
            p[0] = static_cast<uint8_t>(40 + 50 * x);
            p[1] = static_cast<uint8_t>(30 + 60 * y);
            p[2] = static_cast<uint8_t>((x + y) % 2 ? 250 : 5);
        }
    presenter.upload(0, img.data(), n, n);
    const Rect dst{10, 20, n * s, n * s};
    auto draw = [&] {
        presenter.begin_frame();
        presenter.draw_image(0, dst);
        presenter.end_frame();
        int w = 0, h = 0;
        auto px = presenter.read_pixels(w, h);
        REQUIRE((w == 200 && h == 120));
        return px;
    };
    const std::vector<uint8_t> px = draw();
    int mismatches = 0;
    for (int y = 0; y < n * s; ++y)
        for (int x = 0; x < n * s; ++x)
            for (int c = 0; c < 3; ++c)
                if (px[((dst.y + y) * 200 + dst.x + x) * 3 + c] != img[((y / s) * n + x / s) * 3 + c]) ++mismatches;
    CHECK(mismatches == 0);
    // Outside the image: the black clear colour.
    CHECK(px[(5 * 200 + 5) * 3] == 0);
    CHECK(px[((dst.y + dst.h) * 200 + dst.x) * 3 + 1] == 0);

    presenter.set_smooth(true);
    const std::vector<uint8_t> smooth = draw();
    // On a texel boundary bilinear filtering blends neighbours: at least one pixel differs from nearest.
    int differ = 0;
    for (int y = 0; y < n * s; ++y)
        for (int x = 0; x < n * s; ++x)
            if (smooth[((dst.y + y) * 200 + dst.x + x) * 3] != px[((dst.y + y) * 200 + dst.x + x) * 3]) ++differ;
    CHECK(differ > 0);
}
