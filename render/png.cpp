// PNG writing through stb_image_write (libstb carries the implementation).
#include <stb_image_write.h>

#include "render/render.h"

namespace dc::render {

void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels) {
    DC_CHECK(pixels && width > 0 && height > 0 && (channels == 3 || channels == 4),
             "write_png " << path << ": expected an RGB or RGBA image, found " << width << "x" << height << "x"
                          << channels);
    const int ok = stbi_write_png(path.c_str(), width, height, channels, pixels, width * channels);
    DC_CHECK(ok, "could not write the PNG file " << path << " (does its folder exist and is it writable?)");
}

}  // namespace dc::render
