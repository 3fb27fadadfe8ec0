// The console's page: web/assets/*, compiled into dropq-web by
// web/embed_assets.cmake, so that the page needs no files at run time, no
// build step and no network. Immutable; thread: any.
#pragma once

#include <string_view>

namespace dropq::web {

struct Asset {
  std::string_view body;  // "" for no such asset
  std::string_view type;  // its Content-Type
};

// The asset named `name` ("index.html", "app.js", "app.css").
Asset FindAsset(std::string_view name);

}  // namespace dropq::web
