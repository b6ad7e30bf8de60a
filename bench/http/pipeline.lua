-- wrk script for the pipelined HTTP workload: every write carries 16
-- requests (wrk counts each of the 16 responses). wrk's own pipeline.lua
-- approach: init() builds the string once, request() returns it.
local depth = 16

init = function(args)
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end
