"""One module per console page, each an APIRouter under /console/<page>."""
